//! Parsing an expression with CEL's parser, bounded and without panics.
//!
//! The parser is generated (ANTLR) and recursive: we cap the text's length and its
//! bracket nesting before parsing, run it on a thread of its own with a stack far larger
//! than the deepest tree a capped text can make, and catch a panic there, so a parser bug
//! on a strange input becomes an error at the expression, never a crash of
//! `backplane check` or the gateway. Parsing happens at load, never on the data path.

use std::panic::{AssertUnwindSafe, catch_unwind};

use cel::IdedExpr;
use cel::common::ast::SourceInfo;

use crate::Problem;

/// The deepest nesting the parser accepts (calls and parentheses inside each other).
pub const MAX_DEPTH: u16 = 32;
/// The longest expression accepted, in bytes.
pub const MAX_LEN: usize = 1000;

/// A parsed expression and where each node is in its text.
pub struct Parsed {
    pub expr: IdedExpr,
    pub info: SourceInfo,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("expr", &self.expr)
            .finish_non_exhaustive()
    }
}

/// Parses `text`, or says where and why it is not an expression.
pub fn parse(text: &str) -> Result<Parsed, Vec<Problem>> {
    if text.len() > MAX_LEN {
        return Err(vec![Problem::new(
            0,
            format!("the expression is {} bytes long, more than {MAX_LEN}", text.len()),
        )]);
    }
    if let Some(at) = too_deep(text) {
        return Err(vec![Problem::new(
            at,
            format!("brackets nest deeper than {MAX_DEPTH}"),
        )]);
    }
    let owned = text.to_owned();
    let result = std::thread::Builder::new()
        .name("expr-parse".to_owned())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            catch_unwind(AssertUnwindSafe(|| {
                cel::parser::Parser::new()
                    .max_recursion_depth(MAX_DEPTH)
                    .parse_with_source_info(&owned)
                    .map_err(|errors| {
                        errors
                            .errors
                            .iter()
                            .map(|e| (e.pos, e.msg.clone()))
                            .collect::<Vec<_>>()
                    })
            }))
        })
        .map_err(|_| ())
        .and_then(|thread| thread.join().map_err(|_| ()));
    let result = match result {
        Ok(r) => r,
        Err(()) => {
            return Err(vec![Problem::new(
                0,
                "the expression could not be parsed (no thread for the parser)".to_owned(),
            )]);
        }
    };
    match result {
        Ok(Ok((expr, info))) => Ok(Parsed { expr, info }),
        Ok(Err(errors)) => Err(errors
            .into_iter()
            .map(|(pos, msg)| {
                Problem::new(
                    char_at_line_column(text, pos.0, pos.1),
                    format!("syntax error: {msg}"),
                )
            })
            .collect()),
        Err(_) => Err(vec![Problem::new(
            0,
            "the expression parser failed on this text".to_owned(),
        )]),
    }
}

/// The parser's stack: a 1000-byte text of unary operators makes a tree 1000 deep.
const PARSER_STACK: usize = 64 << 20;

/// Where brackets (outside string literals) first nest deeper than [`MAX_DEPTH`].
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.chars().enumerate() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_DEPTH as usize {
                    return Some(i);
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The character offset of a 1-based (line, column) the parser reports; 0 when unknown.
fn char_at_line_column(text: &str, line: isize, column: isize) -> usize {
    if line < 1 || column < 1 {
        return 0;
    }
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            return offset + (column as usize - 1).min(l.chars().count());
        }
        offset += l.chars().count();
    }
    offset
}

/// The character offset of node `id` in `text`.
pub fn char_offset(text: &str, info: &SourceInfo, id: u64) -> usize {
    let byte = info.offset_for(id).map_or(0, |(start, _)| start as usize);
    text.get(..byte.min(text.len()))
        .map_or(0, |prefix| prefix.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_say_where() {
        let errors = parse("a + * b").err().unwrap();
        assert!(errors[0].message.starts_with("syntax error"), "{errors:?}");
        assert_eq!(errors[0].at, 4);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}1{}", "(".repeat(400), ")".repeat(400));
        assert!(parse(&deep).is_err());
        let deep_calls = format!("{}x{}", "abs(".repeat(200), ")".repeat(200));
        assert!(parse(&deep_calls).is_err());
        // Deep trees without brackets: the parser's own stack holds them.
        let _ = parse(&format!("{}1", "-".repeat(MAX_LEN - 1)));
        let _ = parse(&format!("{}true", "!".repeat(MAX_LEN - 4)));
        let _ = parse(&format!("a{}", ".b".repeat((MAX_LEN - 1) / 2)));
        let _ = parse(&"1+".repeat(MAX_LEN / 2 - 1));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "(",
            ")",
            "\"",
            "'",
            "\u{0}",
            "a.",
            ".a",
            "a[",
            "{",
            "{1:",
            "[1,",
            "1..2",
            "a ? b",
            "?:",
            "\\",
            "b\"\\u",
            "0x",
            "1e999999",
            "-9223372036854775809",
            "18446744073709551616u",
            "a.b.c.d(",
            "has(",
            "x.all(",
            "\u{1F600}",
            "r\"",
            "'''",
            "b'\\xff'",
        ] {
            let _ = parse(text);
        }
    }
}
