//! `COMMAND INFO` and `COMMAND DOCS` replies, built from the command table.
//!
//! A spec's `syntax` is written as Redis documents arguments: `key value [NX|XX] [GET]
//! [EX seconds:integer|KEEPTTL] [key value]...`. Upper-case words are keyword tokens; lower-case
//! words are arguments, typed by a `:type` suffix (`string` by default, `key` for a word named
//! `key`); `[...]` is optional, `a|b` is a choice, `...` repeats. A keyword followed by one
//! argument becomes that argument with a `token`, as in Redis's own docs.

use super::table::CommandSpec;
use crate::resp::reply::Reply;

/// One documented argument.
#[derive(Clone, Debug, PartialEq)]
struct Arg {
    name: String,
    kind: ArgKind,
    token: Option<String>,
    optional: bool,
    multiple: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum ArgKind {
    Plain(&'static str),
    PureToken,
    OneOf(Vec<Arg>),
    Block(Vec<Arg>),
}

#[derive(Clone, Debug, PartialEq)]
enum Lexeme {
    Open,
    Close,
    Bar,
    Word { text: String, multiple: bool },
}

fn lex(syntax: &str) -> Vec<Lexeme> {
    let mut out = Vec::new();
    let mut chars = syntax.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '[' => {
                chars.next();
                out.push(Lexeme::Open);
            }
            ']' => {
                chars.next();
                // `]...` repeats the bracketed group.
                if syntax_follows(&mut chars, "...") {
                    out.push(Lexeme::Close);
                    out.push(Lexeme::Word {
                        text: "...".into(),
                        multiple: true,
                    });
                } else {
                    out.push(Lexeme::Close);
                }
            }
            '|' => {
                chars.next();
                out.push(Lexeme::Bar);
            }
            _ => {
                let mut text = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, ' ' | '[' | ']' | '|') {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                let multiple = text.ends_with("...");
                let text = text.trim_end_matches("...").to_string();
                out.push(Lexeme::Word { text, multiple });
            }
        }
    }
    out
}

fn syntax_follows(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, what: &str) -> bool {
    let rest: String = chars.clone().take(what.len()).collect();
    if rest == what {
        for _ in 0..what.len() {
            chars.next();
        }
        true
    } else {
        false
    }
}

/// Parses a sequence of alternatives until a `]` or the end.
fn parse_choice(lexemes: &[Lexeme], at: &mut usize) -> Vec<Arg> {
    let mut alternatives = vec![parse_sequence(lexemes, at)];
    while lexemes.get(*at) == Some(&Lexeme::Bar) {
        *at += 1;
        alternatives.push(parse_sequence(lexemes, at));
    }
    if alternatives.len() == 1 {
        return alternatives.pop().expect("one alternative");
    }
    let choices: Vec<Arg> = alternatives.into_iter().map(merge_sequence).collect();
    let name = choices
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join("-");
    vec![Arg {
        name,
        kind: ArgKind::OneOf(choices),
        token: None,
        optional: false,
        multiple: false,
    }]
}

fn parse_sequence(lexemes: &[Lexeme], at: &mut usize) -> Vec<Arg> {
    let mut args = Vec::new();
    while let Some(lexeme) = lexemes.get(*at) {
        match lexeme {
            Lexeme::Close | Lexeme::Bar => break,
            Lexeme::Open => {
                *at += 1;
                let inner = parse_choice(lexemes, at);
                if lexemes.get(*at) == Some(&Lexeme::Close) {
                    *at += 1;
                }
                let mut group = merge_sequence(inner);
                group.optional = true;
                if let Some(Lexeme::Word { text, multiple: true }) = lexemes.get(*at)
                    && text == "..."
                {
                    *at += 1;
                    group.multiple = true;
                }
                args.push(group);
            }
            Lexeme::Word { text, multiple } => {
                *at += 1;
                args.push(word_arg(text, *multiple));
            }
        }
    }
    args
}

/// A sequence as one argument: itself if single, `TOKEN arg` as an argument with a token,
/// otherwise a block.
fn merge_sequence(mut args: Vec<Arg>) -> Arg {
    if args.len() == 1 {
        return args.pop().expect("one argument");
    }
    if args.len() == 2 && args[0].kind == ArgKind::PureToken && args[1].token.is_none() {
        let mut arg = args.pop().expect("two arguments");
        arg.token = args[0].token.clone();
        return arg;
    }
    let name = args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join("-");
    Arg {
        name,
        kind: ArgKind::Block(args),
        token: None,
        optional: false,
        multiple: false,
    }
}

fn word_arg(text: &str, multiple: bool) -> Arg {
    let is_token =
        text.chars().any(|c| c.is_ascii_uppercase()) && !text.chars().any(|c| c.is_ascii_lowercase());
    if is_token {
        return Arg {
            name: text.to_ascii_lowercase(),
            kind: ArgKind::PureToken,
            token: Some(text.to_string()),
            optional: false,
            multiple,
        };
    }
    let (name, kind) = match text.split_once(':') {
        Some((name, "integer")) => (name, "integer"),
        Some((name, "double")) => (name, "double"),
        Some((name, "pattern")) => (name, "pattern"),
        Some((name, _)) => (name, "string"),
        None if text == "key" => (text, "key"),
        None => (text, "string"),
    };
    Arg {
        name: name.to_string(),
        kind: ArgKind::Plain(kind),
        token: None,
        optional: false,
        multiple,
    }
}

fn parse_syntax(syntax: &str) -> Vec<Arg> {
    let lexemes = lex(syntax);
    let mut at = 0;
    parse_choice(&lexemes, &mut at)
}

fn arg_reply(arg: &Arg, key_index: &mut i64) -> Reply {
    let mut fields = vec![(Reply::bulk_str("name"), Reply::bulk_str(&arg.name))];
    let kind = match &arg.kind {
        ArgKind::Plain(kind) => *kind,
        ArgKind::PureToken => "pure-token",
        ArgKind::OneOf(_) => "oneof",
        ArgKind::Block(_) => "block",
    };
    fields.push((Reply::bulk_str("type"), Reply::bulk_str(kind)));
    if kind == "key" {
        fields.push((Reply::bulk_str("key_spec_index"), Reply::Integer(*key_index)));
    }
    if let ArgKind::Plain(_) = arg.kind {
        fields.push((Reply::bulk_str("display_text"), Reply::bulk_str(&arg.name)));
    }
    if let Some(token) = &arg.token {
        fields.push((Reply::bulk_str("token"), Reply::bulk_str(token)));
    }
    let mut flags = Vec::new();
    if arg.optional {
        flags.push(Reply::Simple("optional"));
    }
    if arg.multiple {
        flags.push(Reply::Simple("multiple"));
    }
    if !flags.is_empty() {
        fields.push((Reply::bulk_str("flags"), Reply::Set(flags)));
    }
    if let ArgKind::OneOf(children) | ArgKind::Block(children) = &arg.kind {
        let children = children.iter().map(|child| arg_reply(child, key_index)).collect();
        fields.push((Reply::bulk_str("arguments"), Reply::Array(children)));
    }
    Reply::Map(fields)
}

/// The `COMMAND DOCS` entry of one command: its name and a map of its documentation.
pub fn docs_entry(spec: &CommandSpec) -> (Reply, Reply) {
    let name = spec.name.rsplit('|').next().unwrap_or(spec.name);
    let mut fields = vec![
        (Reply::bulk_str("summary"), Reply::bulk_str(spec.summary)),
        (Reply::bulk_str("since"), Reply::bulk_str(spec.since)),
        (Reply::bulk_str("group"), Reply::bulk_str(spec.group)),
        (Reply::bulk_str("complexity"), Reply::bulk_str(spec.complexity)),
    ];
    let mut key_index = 0;
    let args = parse_syntax(spec.syntax);
    if !args.is_empty() {
        let args = args.iter().map(|arg| arg_reply(arg, &mut key_index)).collect();
        fields.push((Reply::bulk_str("arguments"), Reply::Array(args)));
    }
    if !spec.subcommands.is_empty() {
        let subs = spec.subcommands.iter().map(|sub| {
            let (_, doc) = docs_entry(sub);
            (Reply::bulk_str(sub.name), doc)
        });
        fields.push((Reply::bulk_str("subcommands"), Reply::Map(subs.collect())));
    }
    (Reply::bulk_str(name), Reply::Map(fields))
}

/// The `COMMAND INFO` entry of one command, in Redis 7's ten-element shape.
pub fn info_entry(spec: &CommandSpec) -> Reply {
    let flags = spec.flags.iter().map(|f| Reply::Simple(f)).collect();
    let categories = spec.acl_categories().into_iter().map(Reply::Simple).collect();
    let key_specs = if spec.first_key > 0 {
        let write = spec.is_write();
        let last = if spec.last_key < 0 {
            spec.last_key
        } else {
            spec.last_key - spec.first_key
        };
        vec![Reply::Map(vec![
            (
                Reply::bulk_str("flags"),
                Reply::Set(vec![
                    Reply::Simple(if write { "RW" } else { "RO" }),
                    Reply::Simple(if write { "UPDATE" } else { "ACCESS" }),
                ]),
            ),
            (
                Reply::bulk_str("begin_search"),
                Reply::Map(vec![
                    (Reply::bulk_str("type"), Reply::bulk_str("index")),
                    (
                        Reply::bulk_str("spec"),
                        Reply::Map(vec![(
                            Reply::bulk_str("index"),
                            Reply::Integer(spec.first_key.into()),
                        )]),
                    ),
                ]),
            ),
            (
                Reply::bulk_str("find_keys"),
                Reply::Map(vec![
                    (Reply::bulk_str("type"), Reply::bulk_str("range")),
                    (
                        Reply::bulk_str("spec"),
                        Reply::Map(vec![
                            (Reply::bulk_str("lastkey"), Reply::Integer(last.into())),
                            (Reply::bulk_str("keystep"), Reply::Integer(spec.step.into())),
                            (Reply::bulk_str("limit"), Reply::Integer(0)),
                        ]),
                    ),
                ]),
            ),
        ])]
    } else {
        Vec::new()
    };
    Reply::Array(vec![
        Reply::bulk_str(spec.name),
        Reply::Integer(spec.arity.into()),
        Reply::Set(flags),
        Reply::Integer(spec.first_key.into()),
        Reply::Integer(spec.last_key.into()),
        Reply::Integer(spec.step.into()),
        Reply::Set(categories),
        Reply::Array(Vec::new()),
        Reply::Array(key_specs),
        Reply::Array(spec.subcommands.iter().map(info_entry).collect()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(args: &[Arg]) -> Vec<String> {
        args.iter().map(|a| a.name.clone()).collect()
    }

    #[test]
    fn set_syntax_becomes_redis_argument_tree() {
        let args = parse_syntax(super::super::table::lookup(b"set").unwrap().syntax);
        assert_eq!(
            names(&args),
            [
                "key",
                "value",
                "nx-xx",
                "get",
                "seconds-milliseconds-unix-time-seconds-unix-time-milliseconds-keepttl"
            ]
        );
        assert_eq!(args[0].kind, ArgKind::Plain("key"));
        assert!(args[2].optional && matches!(args[2].kind, ArgKind::OneOf(_)));
        let ArgKind::OneOf(expiry) = &args[4].kind else {
            panic!("{:?}", args[4])
        };
        assert_eq!(expiry[0].token.as_deref(), Some("EX"));
        assert_eq!(expiry[0].kind, ArgKind::Plain("integer"));
        assert_eq!(expiry[4].kind, ArgKind::PureToken);
    }

    #[test]
    fn repeated_groups_and_words() {
        let args = parse_syntax("[key value]...");
        assert_eq!(args.len(), 1);
        assert!(args[0].optional && args[0].multiple);
        assert!(matches!(&args[0].kind, ArgKind::Block(inner) if names(inner) == ["key", "value"]));
        let args = parse_syntax("key...");
        assert!(args[0].multiple && !args[0].optional);
        assert!(parse_syntax("").is_empty());
    }

    #[test]
    fn every_command_documents_without_panicking() {
        for spec in super::super::table::COMMANDS {
            let _ = docs_entry(spec);
            let _ = info_entry(spec);
        }
    }
}
