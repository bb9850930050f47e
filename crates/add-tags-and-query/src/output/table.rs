//! Plain-text tables for query rows that are not whole twins (projections, aggregates).

use serde_json::Value;

/// Renders `rows` as a left-aligned table: one column per member (in first-seen order), a
/// header, a dashed rule, then one line per row. Strings print bare, other values as compact
/// JSON, missing members as empty cells. Rows that are not objects form a `value` column.
pub fn render(rows: &[Value]) -> String {
    let columns = columns(rows);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row, c)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(name.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    push_line(&mut out, &columns, &widths);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    push_line(&mut out, &rule, &widths);
    for row in &cells {
        push_line(&mut out, row, &widths);
    }
    out
}

const VALUE_COLUMN: &str = "value";

fn columns(rows: &[Value]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        match row {
            Value::Object(map) => {
                for key in map.keys() {
                    if !columns.iter().any(|c| c == key) {
                        columns.push(key.clone());
                    }
                }
            }
            _ => {
                if !columns.iter().any(|c| c == VALUE_COLUMN) {
                    columns.push(VALUE_COLUMN.to_owned());
                }
            }
        }
    }
    columns
}

fn cell(row: &Value, column: &str) -> String {
    let value = match row {
        Value::Object(map) => map.get(column),
        other if column == VALUE_COLUMN => Some(other),
        _ => None,
    };
    match value {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn push_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        line.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count()) + 2;
        line.extend(std::iter::repeat_n(' ', pad));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn count_row() {
        assert_eq!(
            render(&[json!({"totalNumberOfDevices": 42})]),
            "totalNumberOfDevices\n--------------------\n42\n"
        );
    }

    #[test]
    fn group_by_rows_align_and_fill_gaps() {
        let rows = [
            json!({"numberOfDevices": 3, "status": "Success"}),
            json!({"numberOfDevices": 12, "status": null}),
            json!({"status": "Pending", "extra": {"a": 1}}),
        ];
        assert_eq!(
            render(&rows),
            "numberOfDevices  status   extra\n\
             ---------------  -------  -------\n\
             3                Success\n\
             12               null\n\
             \x20                Pending  {\"a\":1}\n"
        );
    }

    #[test]
    fn scalar_rows() {
        assert_eq!(render(&[json!(1), json!("x")]), "value\n-----\n1\nx\n");
    }
}
