//! Printer: `Display` for the syntax tree.
//!
//! The output parses back to an equal tree (spans aside): keywords and function names are
//! upper-cased, parentheses are added exactly where precedence needs them, and property
//! names that are not plain identifiers (or are keywords) are written as `[[name]]`.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::{
    is_keyword, Aggregate, Expr, ExprKind, Literal, Number, Path, Prec, Projection, ProjectionItem,
    Query, SelectList, UnaryOp,
};
use crate::lex::{is_ident_continue, is_ident_start};

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        if let Some(top) = &self.select.top {
            write!(f, "TOP {} ", top.node)?;
        }
        match &self.select.list {
            SelectList::All => f.write_str("*")?,
            SelectList::Items(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
            }
        }
        write!(f, " FROM {}", self.from.node.as_str())?;
        if let Some(cond) = &self.where_clause {
            write!(f, " WHERE {cond}")?;
        }
        if let Some(path) = &self.group_by {
            write!(f, " GROUP BY {path}")?;
        }
        Ok(())
    }
}

impl Display for Projection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.item {
            ProjectionItem::Path(p) => write!(f, "{p}")?,
            ProjectionItem::Aggregate(a) => write!(f, "{a}")?,
        }
        if let Some(alias) = &self.alias {
            f.write_str(" AS ")?;
            write_name(f, &alias.node)?;
        }
        Ok(())
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.func.name())?;
        if let Some(arg) = &self.arg {
            write!(f, "{arg}")?;
        }
        f.write_str(")")
    }
}

impl Display for Path {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write_name(f, &seg.node)?;
        }
        Ok(())
    }
}

/// A property name or alias: bare if the lexer would read it back as the same
/// non-keyword identifier, else escaped.
fn write_name(f: &mut Formatter<'_>, name: &str) -> fmt::Result {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(is_ident_start)
        && chars.all(is_ident_continue)
        && !is_keyword(name);
    if plain {
        f.write_str(name)
    } else {
        write!(f, "[[{name}]]")
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_expr(f, self, Prec::Or)
    }
}

fn prec_of(expr: &Expr) -> Prec {
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Array(_) | ExprKind::Path(_) | ExprKind::Call { .. } => {
            Prec::Atom
        }
        ExprKind::Unary {
            op: UnaryOp::Not, ..
        } => Prec::Not,
        ExprKind::Unary {
            op: UnaryOp::Neg, ..
        } => Prec::Unary,
        ExprKind::Binary { op, .. } => op.prec(),
        ExprKind::In { .. } => Prec::Compare,
    }
}

/// Writes `expr`, parenthesised if it binds more loosely than its position requires.
fn write_expr(f: &mut Formatter<'_>, expr: &Expr, min: Prec) -> fmt::Result {
    let own = prec_of(expr);
    if own < min {
        f.write_str("(")?;
        write_bare(f, expr, own)?;
        f.write_str(")")
    } else {
        write_bare(f, expr, own)
    }
}

fn write_bare(f: &mut Formatter<'_>, expr: &Expr, own: Prec) -> fmt::Result {
    match &expr.kind {
        ExprKind::Literal(lit) => write!(f, "{lit}"),
        ExprKind::Array(items) => write_array(f, items),
        ExprKind::Path(p) => write!(f, "{p}"),
        ExprKind::Call { func, args } => {
            write!(f, "{}(", func.name())?;
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_expr(f, arg, Prec::Or)?;
            }
            f.write_str(")")
        }
        ExprKind::Unary {
            op: UnaryOp::Not,
            expr,
        } => {
            f.write_str("NOT ")?;
            write_expr(f, expr, Prec::Not)
        }
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => {
            f.write_str("-")?;
            // `-5` reads back as the constant -5, so a negated number (from `-(5)` or
            // `--0`) keeps its parentheses.
            if matches!(expr.kind, ExprKind::Literal(Literal::Number(_))) {
                return write!(f, "({expr})");
            }
            write_expr(f, expr, Prec::Unary)
        }
        ExprKind::Binary { op, left, right } => {
            write_expr(f, left, own)?;
            write!(f, " {} ", op.symbol())?;
            // Operators are left-associative, so an equal-precedence right operand needs
            // parentheses to keep its grouping.
            write_expr(f, right, own.tighter())
        }
        ExprKind::In {
            expr,
            list,
            negated,
        } => {
            write_expr(f, expr, Prec::Compare)?;
            f.write_str(if *negated { " NIN " } else { " IN " })?;
            write_array(f, list)
        }
    }
}

fn write_array(f: &mut Formatter<'_>, items: &[Literal]) -> fmt::Result {
    f.write_str("[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    f.write_str("]")
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Undefined => f.write_str("undefined"),
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::String(s) => {
                f.write_char('\'')?;
                for c in s.chars() {
                    match c {
                        '\'' => f.write_str("\\'")?,
                        '\\' => f.write_str("\\\\")?,
                        c if c.is_control() => write!(f, "\\u{:04X}", u32::from(c))?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_char('\'')
            }
        }
    }
}

impl Display for Number {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => {
                // Rust prints the shortest text that reads back to the same double, without
                // an exponent; a ".0" keeps it a float when it happens to be whole.
                let text = x.to_string();
                f.write_str(&text)?;
                if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    f.write_str(".0")?;
                }
                Ok(())
            }
        }
    }
}
