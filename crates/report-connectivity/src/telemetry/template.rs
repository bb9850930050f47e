//! `--telemetry` message templates: text with `{{…}}` placeholders, parsed once into parts and
//! rendered for every message.
//!
//! Placeholders: `{{seq}}` (the message's sequence number, from 1), `{{now}}` (the current UTC
//! time, RFC 3339 with milliseconds), `{{deviceId}}`, `{{moduleId}}` (empty for a device), and
//! `{{random:MIN:MAX}}` (uniform in MIN..=MAX; integers when both bounds are integers, else as
//! many decimals as the bounds have). Anything else between `{{` and `}}` is refused.

use std::fmt::Write as _;
use std::time::SystemTime;

use rand::Rng;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Seq,
    Now,
    DeviceId,
    ModuleId,
    RandomInt { min: i64, max: i64 },
    RandomFloat { min: f64, max: f64, decimals: usize },
}

/// What a message is rendered for.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// `{{seq}}`.
    pub seq: u64,
    /// `{{deviceId}}`.
    pub device_id: &'a str,
    /// `{{moduleId}}`.
    pub module_id: Option<&'a str>,
}

/// Why a template cannot be used (the message names the placeholder).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` with no `}}` after it.
    #[error("'{{{{' at byte {0} is never closed with '}}}}'")]
    Unclosed(usize),
    /// A placeholder the device does not know.
    #[error("unknown placeholder '{{{{{0}}}}}' (known: {{{{seq}}}}, {{{{now}}}}, {{{{deviceId}}}}, {{{{moduleId}}}}, {{{{random:MIN:MAX}}}})")]
    Unknown(String),
    /// `{{random:…}}` with bounds that are not numbers or not in order.
    #[error("'{{{{{0}}}}}': {1} (expected {{{{random:MIN:MAX}}}} with numbers MIN <= MAX, e.g. {{{{random:20:30}}}} or {{{{random:-1.5:1.5}}}})")]
    BadRandom(String, &'static str),
}

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    /// A [`TemplateError`] for an unclosed or unknown placeholder or bad random bounds.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(TemplateError::Unclosed(offset + start));
            };
            parts.push(placeholder(after[..end].trim())?);
            let consumed = start + 2 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Renders one message body.
    pub fn render(&self, context: &RenderContext<'_>) -> String {
        let mut out = String::new();
        let mut rng = rand::thread_rng();
        for part in &self.parts {
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    Ok(())
                }
                Part::Seq => write!(out, "{}", context.seq),
                Part::Now => write!(
                    out,
                    "{}",
                    humantime::format_rfc3339_millis(SystemTime::now())
                ),
                Part::DeviceId => {
                    out.push_str(context.device_id);
                    Ok(())
                }
                Part::ModuleId => {
                    out.push_str(context.module_id.unwrap_or(""));
                    Ok(())
                }
                Part::RandomInt { min, max } => write!(out, "{}", rng.gen_range(*min..=*max)),
                Part::RandomFloat { min, max, decimals } => {
                    write!(out, "{:.*}", decimals, rng.gen_range(*min..=*max))
                }
            };
        }
        out
    }
}

fn placeholder(name: &str) -> Result<Part, TemplateError> {
    match name {
        "seq" => Ok(Part::Seq),
        "now" => Ok(Part::Now),
        "deviceId" => Ok(Part::DeviceId),
        "moduleId" => Ok(Part::ModuleId),
        _ => match name.strip_prefix("random:") {
            Some(bounds) => random(name, bounds),
            None => Err(TemplateError::Unknown(name.to_owned())),
        },
    }
}

fn random(name: &str, bounds: &str) -> Result<Part, TemplateError> {
    let bad = |why| TemplateError::BadRandom(name.to_owned(), why);
    // A leading '-' belongs to MIN, so split on the first ':' after it.
    let split = bounds
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == ':')
        .map(|(i, _)| i)
        .ok_or_else(|| bad("two bounds are needed"))?;
    let (min, max) = (bounds[..split].trim(), bounds[split + 1..].trim());
    if let (Ok(min), Ok(max)) = (min.parse::<i64>(), max.parse::<i64>()) {
        return if min <= max {
            Ok(Part::RandomInt { min, max })
        } else {
            Err(bad("MIN is greater than MAX"))
        };
    }
    let decimals = |text: &str| text.split_once('.').map_or(0, |(_, d)| d.len());
    let places = decimals(min).max(decimals(max)).min(9);
    match (min.parse::<f64>(), max.parse::<f64>()) {
        (Ok(lo), Ok(hi)) if lo.is_finite() && hi.is_finite() => {
            if lo <= hi {
                Ok(Part::RandomFloat {
                    min: lo,
                    max: hi,
                    decimals: places,
                })
            } else {
                Err(bad("MIN is greater than MAX"))
            }
        }
        _ => Err(bad("the bounds are not numbers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, seq: u64) -> String {
        Template::parse(template).unwrap().render(&RenderContext {
            seq,
            device_id: "dev-1",
            module_id: None,
        })
    }

    #[test]
    fn placeholders_are_replaced() {
        assert_eq!(
            render(
                r#"{"seq":{{seq}},"id":"{{deviceId}}","m":"{{moduleId}}"}"#,
                7
            ),
            r#"{"seq":7,"id":"dev-1","m":""}"#
        );
        assert_eq!(render("no placeholders", 1), "no placeholders");
        assert_eq!(render("{{ seq }}{{seq}}", 3), "33");
        let now = render("{{now}}", 1);
        assert!(humantime::parse_rfc3339(&now).is_ok(), "{now}");
    }

    #[test]
    fn random_numbers_stay_in_range_with_the_bounds_precision() {
        for _ in 0..200 {
            let n: i64 = render("{{random:-3:3}}", 1).parse().unwrap();
            assert!((-3..=3).contains(&n));
            let text = render("{{random:20.0:30.55}}", 1);
            let x: f64 = text.parse().unwrap();
            assert!((20.0..=30.55).contains(&x), "{text}");
            assert_eq!(text.split_once('.').unwrap().1.len(), 2, "{text}");
        }
        assert_eq!(render("{{random:5:5}}", 1), "5");
    }

    #[test]
    fn bad_templates_name_the_problem() {
        for (template, needle) in [
            ("{\"a\":{{seq}", "never closed"),
            ("{{sequence}}", "unknown placeholder '{{sequence}}'"),
            ("{{random:1}}", "two bounds"),
            ("{{random:5:1}}", "greater"),
            ("{{random:a:b}}", "not numbers"),
            ("{{random:1:inf}}", "not numbers"),
        ] {
            let err = Template::parse(template).expect_err(template);
            assert!(err.to_string().contains(needle), "{template}: {err}");
        }
    }
}
