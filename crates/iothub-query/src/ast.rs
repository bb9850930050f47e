//! The syntax tree of one query. Every node records its [`Span`]; equality ignores spans.
//!
//! `Display` (in `print.rs`) prints a tree back to query text that parses to an equal tree.

use crate::span::{Span, Spanned};

/// `SELECT … FROM … [WHERE …] [GROUP BY …]`.
#[derive(Debug, Clone)]
pub struct Query {
    /// The SELECT clause.
    pub select: Select,
    /// The FROM collection.
    pub from: Spanned<Collection>,
    /// The WHERE condition, if any.
    pub where_clause: Option<Expr>,
    /// The GROUP BY property, if any.
    pub group_by: Option<Path>,
    /// The whole query.
    pub span: Span,
}

impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        self.select == other.select
            && self.from == other.from
            && self.where_clause == other.where_clause
            && self.group_by == other.group_by
    }
}

/// The collection a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// `devices`: device twins.
    Devices,
    /// `devices.modules`: module twins.
    DevicesModules,
}

impl Collection {
    /// The name as written in a query.
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Devices => "devices",
            Collection::DevicesModules => "devices.modules",
        }
    }
}

/// `SELECT [TOP n] <list>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// `TOP n`: the most rows the query returns.
    pub top: Option<Spanned<u64>>,
    /// What each row contains.
    pub list: SelectList,
}

/// The SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectList {
    /// `*`: whole twins.
    All,
    /// Named projections and aggregates.
    Items(Vec<Projection>),
}

/// One SELECT item: `path [AS alias]` or `aggregate [AS alias]`.
#[derive(Debug, Clone)]
pub struct Projection {
    /// The projected value.
    pub item: ProjectionItem,
    /// The `AS` name, if any.
    pub alias: Option<Spanned<String>>,
    /// The whole item including its alias.
    pub span: Span,
}

impl PartialEq for Projection {
    fn eq(&self, other: &Self) -> bool {
        self.item == other.item && self.alias == other.alias
    }
}

/// What a SELECT item projects.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectionItem {
    /// A property of the twin.
    Path(Path),
    /// An aggregate over the rows of a group.
    Aggregate(Aggregate),
}

/// `COUNT()`, `SUM(p)`, `AVG(p)`, `MIN(p)`, `MAX(p)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Which aggregate.
    pub func: AggregateFunc,
    /// The aggregated property (`None` only for `COUNT()`).
    pub arg: Option<Path>,
}

/// The aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFunc {
    /// `COUNT()`: rows in the group.
    Count,
    /// `SUM(p)`: sum of numeric values.
    Sum,
    /// `AVG(p)`: mean of numeric values.
    Avg,
    /// `MIN(p)`: smallest primitive value.
    Min,
    /// `MAX(p)`: largest primitive value.
    Max,
}

impl AggregateFunc {
    /// All aggregates, for name lookup.
    pub const ALL: [AggregateFunc; 5] = [
        AggregateFunc::Count,
        AggregateFunc::Sum,
        AggregateFunc::Avg,
        AggregateFunc::Min,
        AggregateFunc::Max,
    ];

    /// Canonical (upper-case) name.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunc::Count => "COUNT",
            AggregateFunc::Sum => "SUM",
            AggregateFunc::Avg => "AVG",
            AggregateFunc::Min => "MIN",
            AggregateFunc::Max => "MAX",
        }
    }

    /// Looks a name up case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

/// A dotted property path from the twin root, e.g. `properties.desired.$version`.
#[derive(Debug, Clone)]
pub struct Path {
    /// The segments as written (escapes removed).
    pub segments: Vec<Spanned<String>>,
    /// The whole path.
    pub span: Span,
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Path {
    /// The segment names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|s| s.node.as_str())
    }
}

/// An expression (in WHERE).
#[derive(Debug, Clone)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

/// The expression forms.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A constant.
    Literal(Literal),
    /// An array constant `[c, …]`.
    Array(Vec<Literal>),
    /// A twin property.
    Path(Path),
    /// A scalar function call.
    Call {
        /// The function.
        func: Function,
        /// Its arguments (arity checked by the parser).
        args: Vec<Expr>,
    },
    /// `NOT e` or `-e`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        expr: Box<Expr>,
    },
    /// `l op r`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `e IN [c, …]` or `e NIN [c, …]` (also written `NOT IN`).
    In {
        /// The tested value.
        expr: Box<Expr>,
        /// The array constant.
        list: Vec<Literal>,
        /// `NIN`.
        negated: bool,
    },
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
}

/// A number constant: integers stay exact, everything else is a double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer that fits `i64` (decimal or `0x` hex).
    Int(i64),
    /// A decimal with a fraction or exponent, or an integer too big for `i64`.
    Float(f64),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `NOT`.
    Not,
    /// `-`.
    Neg,
}

/// Infix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `OR`.
    Or,
    /// `AND`.
    And,
    /// `=`.
    Eq,
    /// `!=` (also `<>`).
    Ne,
    /// `<`.
    Lt,
    /// `>`.
    Gt,
    /// `<=`.
    Le,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
}

/// Binding strength, loosest first. Shared by the parser and the printer so the printer
/// adds exactly the parentheses the parser needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Prec {
    Or = 1,
    And,
    Not,
    Compare,
    Add,
    Mul,
    Unary,
    Atom,
}

impl Prec {
    /// The next tighter level: the minimum for the right operand of a left-associative
    /// operator at this level.
    pub(crate) fn tighter(self) -> Prec {
        match self {
            Prec::Or => Prec::And,
            Prec::And => Prec::Not,
            Prec::Not => Prec::Compare,
            Prec::Compare => Prec::Add,
            Prec::Add => Prec::Mul,
            Prec::Mul => Prec::Unary,
            Prec::Unary | Prec::Atom => Prec::Atom,
        }
    }
}

impl BinaryOp {
    /// The operator as printed.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Gt => ">",
            BinaryOp::Le => "<=",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }

    pub(crate) fn prec(self) -> Prec {
        match self {
            BinaryOp::Or => Prec::Or,
            BinaryOp::And => Prec::And,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Gt
            | BinaryOp::Le
            | BinaryOp::Ge => Prec::Compare,
            BinaryOp::Add | BinaryOp::Sub => Prec::Add,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => Prec::Mul,
        }
    }

    /// True for `= != < > <= >=`.
    pub fn is_comparison(self) -> bool {
        self.prec() == Prec::Compare
    }
}

/// The scalar functions of twin queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `IS_DEFINED(e)`: the value exists (null included).
    IsDefined,
    /// `IS_NULL(e)`.
    IsNull,
    /// `IS_BOOL(e)`.
    IsBool,
    /// `IS_NUMBER(e)`.
    IsNumber,
    /// `IS_STRING(e)`.
    IsString,
    /// `IS_OBJECT(e)`.
    IsObject,
    /// `IS_ARRAY(e)`.
    IsArray,
    /// `IS_PRIMITIVE(e)`: null, boolean, number or string.
    IsPrimitive,
    /// `STARTSWITH(s, prefix)`, case-sensitive.
    StartsWith,
    /// `ENDSWITH(s, suffix)`, case-sensitive.
    EndsWith,
    /// `ARRAY_CONTAINS(array, value)`: an element of the array property equals the value
    /// (how tools list an IoT Edge parent's children through `parentScopes`).
    ArrayContains,
}

impl Function {
    /// All functions, for name lookup.
    pub const ALL: [Function; 11] = [
        Function::IsDefined,
        Function::IsNull,
        Function::IsBool,
        Function::IsNumber,
        Function::IsString,
        Function::IsObject,
        Function::IsArray,
        Function::IsPrimitive,
        Function::StartsWith,
        Function::EndsWith,
        Function::ArrayContains,
    ];

    /// Canonical (upper-case) name.
    pub fn name(self) -> &'static str {
        match self {
            Function::IsDefined => "IS_DEFINED",
            Function::IsNull => "IS_NULL",
            Function::IsBool => "IS_BOOL",
            Function::IsNumber => "IS_NUMBER",
            Function::IsString => "IS_STRING",
            Function::IsObject => "IS_OBJECT",
            Function::IsArray => "IS_ARRAY",
            Function::IsPrimitive => "IS_PRIMITIVE",
            Function::StartsWith => "STARTSWITH",
            Function::EndsWith => "ENDSWITH",
            Function::ArrayContains => "ARRAY_CONTAINS",
        }
    }

    /// How many arguments it takes.
    pub fn arity(self) -> usize {
        match self {
            Function::StartsWith | Function::EndsWith | Function::ArrayContains => 2,
            _ => 1,
        }
    }

    /// Looks a name up case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// A supported function whose name differs from `name` only in case and underscores
    /// (`STARTS_WITH` → `STARTSWITH`), for error hints.
    pub(crate) fn similar(name: &str) -> Option<&'static str> {
        let squash = |s: &str| -> String {
            s.chars()
                .filter(|c| *c != '_')
                .flat_map(char::to_uppercase)
                .collect()
        };
        let wanted = squash(name);
        Self::ALL
            .into_iter()
            .map(Function::name)
            .chain(AggregateFunc::ALL.into_iter().map(AggregateFunc::name))
            .find(|n| squash(n) == wanted)
    }
}

/// The words that cannot be bare property names (write `[[word]]` instead).
pub const KEYWORDS: [&str; 16] = [
    "SELECT",
    "TOP",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "NIN",
    "TRUE",
    "FALSE",
    "NULL",
    "UNDEFINED",
];

/// True if `word` is a keyword (case-insensitive).
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}
