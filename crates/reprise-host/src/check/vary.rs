//! Token variation and leak detection.
//!
//! Identical calls hide data flowing from one call to another: if every
//! call sends `x-user: alice`, a component that greets everyone with the
//! first caller's name answers as if it were correct. So check also runs
//! variants of the script in which every value it can vary (header values,
//! query parameter values, text, form and JSON string bodies, string
//! arguments of function calls) is a token unique to that call. A value
//! sent only in call i that appears in the answer of call j ≠ j is a leak.

use super::script::ScriptedRequest;
use crate::policy::chaos::SplitMix;
use bytes::Bytes;
use rand::Rng as _;
use std::collections::{HashMap, HashSet};

/// A value one call sent, and where in the call it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// `header x-user`, `query parameter q`, `body`, `JSON string "name"
    /// in the body`, `form field name`, `string argument 1`.
    pub place: String,
    pub value: String,
}

/// One call's data reaching another call's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    /// The run it was seen in.
    pub run: String,
    pub value: String,
    /// 1-based call of the run that sent the value.
    pub from_call: usize,
    pub from_place: String,
    /// 1-based call whose answer held it.
    pub to_call: usize,
    /// `body`, `header x-name`, `result`, `stdout`.
    pub to_place: String,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the value of {} sent in call {} appeared in the {} of call {} ({}: {:?})",
            self.from_place, self.from_call, self.to_place, self.to_call, self.run, self.value
        )
    }
}

/// Values shorter than this, as written in a script, are too common to
/// count as evidence (`1`, `ok`); tokens are always longer.
pub const MIN_EVIDENCE_LEN: usize = 4;

/// Seeded tokens such as `rpr1a2b3c4d5`: letters and digits only (they fit
/// in URIs, headers, JSON and WAVE as they are), long enough never to occur
/// by chance, never the same twice.
pub struct Tokens {
    rng: SplitMix,
    used: HashSet<String>,
}

impl Tokens {
    pub fn new(seed: u64) -> Self {
        Tokens {
            rng: SplitMix::new(seed ^ 0x5eed_7043_e115_0001),
            used: HashSet::new(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A random number below `bound` (at least 1), from the same stream.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// The next token.
    pub fn token(&mut self) -> String {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        loop {
            let mut n = self.next_u64();
            let mut token = String::from("rpr");
            for _ in 0..10 {
                token.push(DIGITS[(n % 36) as usize] as char);
                n /= 36;
            }
            if self.used.insert(token.clone()) {
                return token;
            }
        }
    }
}

/// Headers whose values describe the message rather than carry data.
const FIXED_HEADERS: [&str; 9] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "accept",
    "accept-encoding",
    "expect",
    "user-agent",
];

/// Visits every value of `request` that variation replaces; `replace`
/// returns the new value, or `None` to keep it. The request with the
/// replacements made.
fn visit_request(
    request: &ScriptedRequest,
    replace: &mut dyn FnMut(&str, &str) -> Option<String>,
) -> ScriptedRequest {
    let mut out = request.clone();
    // Query parameter values.
    if let Some((path, query)) = request.path.split_once('?') {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if !value.is_empty() => {
                    match replace(&format!("query parameter {key}"), value) {
                        Some(new) => format!("{key}={new}"),
                        None => pair.to_string(),
                    }
                }
                _ => pair.to_string(),
            })
            .collect();
        out.path = format!("{path}?{}", pairs.join("&"));
    }
    // Header values.
    for (name, value) in &mut out.headers {
        let lower = name.to_ascii_lowercase();
        if FIXED_HEADERS.contains(&lower.as_str()) || value.is_empty() {
            continue;
        }
        if let Some(new) = replace(&format!("header {lower}"), value) {
            *value = new;
        }
    }
    // The body, by its content type.
    let content_type = request
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if let Ok(body) = std::str::from_utf8(&request.body)
        && !body.trim().is_empty()
    {
        let trimmed = body.trim_start();
        let json = content_type.contains("json")
            || (content_type.is_empty() && (trimmed.starts_with('{') || trimmed.starts_with('[')));
        let new = if json {
            json_strings(body, replace)
        } else if content_type.contains("x-www-form-urlencoded") {
            form_values(body, replace)
        } else if content_type.is_empty() || content_type.starts_with("text/") {
            replace("body", body).unwrap_or_else(|| body.to_string())
        } else {
            body.to_string()
        };
        out.body = Bytes::from(new);
    }
    out
}

/// `body` (JSON) with each string value (not object keys) replaced.
fn json_strings(body: &str, replace: &mut dyn FnMut(&str, &str) -> Option<String>) -> String {
    let bytes = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    let mut last_key = String::new();
    let mut index = 0;
    let mut copied = 0;
    while index < bytes.len() {
        if bytes[index] != b'"' {
            index += 1;
            continue;
        }
        let start = index + 1;
        let mut end = start;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let end = end.min(bytes.len());
        let content = &body[start..end];
        let after = body[(end + 1).min(body.len())..].trim_start();
        if after.starts_with(':') {
            last_key = content.to_string();
        } else if !content.is_empty() {
            let place = match last_key.is_empty() {
                true => "a JSON string in the body".to_string(),
                false => format!("JSON string \"{last_key}\" in the body"),
            };
            if let Some(new) = replace(&place, content) {
                out.push_str(&body[copied..start]);
                out.push_str(&new);
                copied = end;
            }
        }
        index = end + 1;
    }
    out.push_str(&body[copied..]);
    out
}

/// A form body with each field's value replaced.
fn form_values(body: &str, replace: &mut dyn FnMut(&str, &str) -> Option<String>) -> String {
    body.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !value.is_empty() => {
                match replace(&format!("form field {key}"), value.trim_end()) {
                    Some(new) => format!("{key}={new}"),
                    None => pair.to_string(),
                }
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The values `request` sends, as written.
pub fn request_values(request: &ScriptedRequest) -> Vec<Sent> {
    let mut sent = Vec::new();
    visit_request(request, &mut |place, value| {
        sent.push(Sent {
            place: place.to_string(),
            value: value.to_string(),
        });
        None
    });
    sent
}

/// Where requests that send nothing to vary get a token, so that a
/// component keeping per-caller data from the usual carriers shows it:
/// (header, prefix of its value); a `?q=` query parameter comes too.
const PROBES: [(&str, &str); 6] = [
    ("x-user", ""),
    ("x-user-id", ""),
    ("x-tenant", ""),
    ("x-request-id", ""),
    ("authorization", "Bearer "),
    ("cookie", "session="),
];

/// `request` with every value replaced by a fresh token, and the tokens
/// sent. A request with no value to vary gets tokens in the usual carriers
/// of per-caller data: a query parameter `q`, the [`PROBES`] headers and,
/// for a method that sends one, a text body.
pub fn vary_request(
    request: &ScriptedRequest,
    tokens: &mut Tokens,
) -> (ScriptedRequest, Vec<Sent>) {
    let mut sent = Vec::new();
    let mut varied = visit_request(request, &mut |place, _| {
        let token = tokens.token();
        sent.push(Sent {
            place: place.to_string(),
            value: token.clone(),
        });
        Some(token)
    });
    if sent.is_empty() {
        let q = tokens.token();
        let separator = if varied.path.contains('?') { '&' } else { '?' };
        varied.path = format!("{}{separator}q={q}", varied.path);
        sent.push(Sent {
            place: "query parameter q".to_string(),
            value: q,
        });
        for (name, prefix) in PROBES {
            if varied.header(name).is_some() {
                continue;
            }
            let token = tokens.token();
            varied
                .headers
                .push((name.to_string(), format!("{prefix}{token}")));
            sent.push(Sent {
                place: format!("header {name}"),
                value: token,
            });
        }
        let sends_body = matches!(varied.method.as_str(), "POST" | "PUT" | "PATCH");
        if sends_body && varied.body.is_empty() {
            let token = tokens.token();
            if varied.header("content-type").is_none() {
                varied
                    .headers
                    .push(("content-type".to_string(), "text/plain".to_string()));
            }
            varied.body = Bytes::from(token.clone());
            sent.push(Sent {
                place: "body".to_string(),
                value: token,
            });
        }
    }
    (varied, sent)
}

/// `text` (a call in WAVE) with each string literal in its arguments
/// replaced by `replace`'s answer.
fn visit_call(text: &str, replace: &mut dyn FnMut(&str, &str) -> Option<String>) -> String {
    let Some(open) = text.find('(') else {
        return text.to_string();
    };
    let bytes = text.as_bytes();
    let mut out = String::from(&text[..open]);
    let mut copied = open;
    let mut index = open;
    let mut count = 0;
    while index < bytes.len() {
        match bytes[index] {
            quote @ (b'"' | b'\'') => {
                let start = index + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end] != quote {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let end = end.min(bytes.len());
                if quote == b'"' && end > start {
                    count += 1;
                    if let Some(new) =
                        replace(&format!("string argument {count}"), &text[start..end])
                    {
                        out.push_str(&text[copied..start]);
                        out.push_str(&new);
                        copied = end;
                    }
                }
                index = end + 1;
            }
            _ => index += 1,
        }
    }
    out.push_str(&text[copied.min(text.len())..]);
    out
}

/// The string arguments a call sends, as written.
pub fn call_values(text: &str) -> Vec<Sent> {
    let mut sent = Vec::new();
    visit_call(text, &mut |place, value| {
        sent.push(Sent {
            place: place.to_string(),
            value: value.to_string(),
        });
        None
    });
    sent
}

/// `text` with every string argument replaced by a fresh token.
pub fn vary_call(text: &str, tokens: &mut Tokens) -> (String, Vec<Sent>) {
    let mut sent = Vec::new();
    let varied = visit_call(text, &mut |place, _| {
        let token = tokens.token();
        sent.push(Sent {
            place: place.to_string(),
            value: token.clone(),
        });
        Some(token)
    });
    (varied, sent)
}

/// What one call of a run sent and answered, as leak detection needs it.
pub struct CallData<'a> {
    pub sent: &'a [Sent],
    /// The answer's parts: (`body`, text), (`header x-id`, value), ...
    pub answer: Vec<(String, String)>,
    /// What fresh instances answered to the same call, all parts joined:
    /// a value found there is the component's own, not a leak.
    pub fresh: Vec<String>,
}

/// The tokens [`Tokens`] makes that occur in `text`.
pub fn tokens_in(text: &str) -> impl Iterator<Item = &str> {
    const LEN: usize = 13;
    text.match_indices("rpr").filter_map(move |(at, _)| {
        let token = text.get(at..at + LEN)?;
        token[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            .then_some(token)
    })
}

/// The leaks in one run: a value sent in exactly one call of the run, at
/// least [`MIN_EVIDENCE_LEN`] long, found in another call's answer but
/// not in what fresh instances answered to that call.
pub fn find_leaks(run: &str, calls: &[CallData]) -> Vec<Leak> {
    let mut senders: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, call) in calls.iter().enumerate() {
        for sent in call.sent {
            let entry = senders.entry(sent.value.as_str()).or_default();
            if !entry.contains(&index) {
                entry.push(index);
            }
        }
    }
    // The evidence: each value one call alone sent, with that call and
    // where it sent it, in call order.
    let mut evidence: Vec<(usize, &Sent)> = Vec::new();
    for (from, call) in calls.iter().enumerate() {
        for sent in call.sent {
            let value = sent.value.as_str();
            if value.chars().count() >= MIN_EVIDENCE_LEN && senders[value].len() == 1 {
                evidence.push((from, sent));
            }
        }
    }
    let mut leaks = Vec::new();
    let mut known = HashSet::new();
    for (to, call) in calls.iter().enumerate() {
        for &(from, sent) in &evidence {
            let value = sent.value.as_str();
            if from == to || known.contains(&from) {
                continue;
            }
            let Some((place, _)) = call.answer.iter().find(|(_, text)| text.contains(value)) else {
                continue;
            };
            if call.fresh.iter().any(|answer| answer.contains(value)) {
                continue;
            }
            known.insert(from);
            leaks.push(Leak {
                run: run.to_string(),
                value: value.to_string(),
                from_call: from + 1,
                from_place: sent.place.clone(),
                to_call: to + 1,
                to_place: place.clone(),
            });
        }
        known.clear();
    }
    leaks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::script::{parse_http_file, parse_script};

    #[test]
    fn tokens_are_seeded_unique_and_plain() {
        let mut a = Tokens::new(7);
        let mut b = Tokens::new(7);
        let first: Vec<String> = (0..100).map(|_| a.token()).collect();
        let again: Vec<String> = (0..100).map(|_| b.token()).collect();
        assert_eq!(first, again);
        let distinct: HashSet<&String> = first.iter().collect();
        assert_eq!(distinct.len(), 100);
        assert!(first.iter().all(|t| t.len() == 13 && t.starts_with("rpr")));
        assert!(first[0].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(Tokens::new(8).token(), first[0]);
    }

    #[test]
    fn headers_queries_and_bodies_vary() {
        let requests = parse_http_file(
            "POST /login?user=alice&x HTTP/1.1\n\
             Content-Type: application/json\n\
             X-User: alice\n\
             \n\
             {\"name\": \"alice\", \"age\": 3, \"tags\": [\"a\", \"b\"]}\n\
             ###\n\
             POST /form\n\
             Content-Type: application/x-www-form-urlencoded\n\
             \n\
             a=1&b=two\n\
             ###\n\
             POST /text\n\
             \n\
             hello there\n",
        )
        .unwrap();
        let mut tokens = Tokens::new(1);
        let (varied, sent) = vary_request(&requests[0], &mut tokens);
        let places: Vec<&str> = sent.iter().map(|s| s.place.as_str()).collect();
        assert_eq!(
            places,
            [
                "query parameter user",
                "header x-user",
                "JSON string \"name\" in the body",
                "JSON string \"tags\" in the body",
                "JSON string \"tags\" in the body",
            ]
        );
        assert_eq!(varied.path, format!("/login?user={}&x", sent[0].value));
        assert_eq!(varied.header("x-user"), Some(sent[1].value.as_str()));
        assert_eq!(varied.header("content-type"), Some("application/json"));
        let body = String::from_utf8(varied.body.to_vec()).unwrap();
        assert!(
            body.contains(&format!("\"name\": \"{}\"", sent[2].value)),
            "{body}"
        );
        assert!(body.contains("\"age\": 3"), "{body}");
        let (varied, sent) = vary_request(&requests[1], &mut tokens);
        assert_eq!(
            varied.body,
            Bytes::from(format!("a={}&b={}", sent[0].value, sent[1].value))
        );
        let (varied, sent) = vary_request(&requests[2], &mut tokens);
        assert_eq!(varied.body, Bytes::from(sent[0].value.clone()));
        assert_eq!(request_values(&requests[2])[0].value, "hello there");
    }

    #[test]
    fn requests_without_values_get_every_usual_carrier_of_caller_data() {
        let request = &parse_script("GET /").unwrap()[0];
        assert!(request_values(request).is_empty());
        let (varied, sent) = vary_request(request, &mut Tokens::new(3));
        assert_eq!(varied.path, format!("/?q={}", sent[0].value));
        let places: Vec<&str> = sent.iter().map(|s| s.place.as_str()).collect();
        assert_eq!(
            places,
            [
                "query parameter q",
                "header x-user",
                "header x-user-id",
                "header x-tenant",
                "header x-request-id",
                "header authorization",
                "header cookie",
            ]
        );
        assert_eq!(varied.header("x-user"), Some(sent[1].value.as_str()));
        assert_eq!(varied.header("x-tenant"), Some(sent[3].value.as_str()));
        assert_eq!(
            varied.header("authorization"),
            Some(format!("Bearer {}", sent[5].value).as_str())
        );
        assert_eq!(
            varied.header("cookie"),
            Some(format!("session={}", sent[6].value).as_str())
        );
        // A POST with nothing in it gets a body too.
        let request = &parse_script("POST /submit").unwrap()[0];
        let (varied, sent) = vary_request(request, &mut Tokens::new(3));
        let body = sent.last().unwrap();
        assert_eq!(body.place, "body");
        assert_eq!(varied.body, Bytes::from(body.value.clone()));
        assert_eq!(varied.header("content-type"), Some("text/plain"));
    }

    #[test]
    fn string_arguments_of_calls_vary() {
        let (varied, sent) = vary_call(r#"greet("alice", 'x', {n: "a\"b"})"#, &mut Tokens::new(2));
        assert_eq!(sent.len(), 2);
        assert_eq!(
            varied,
            format!(
                r#"greet("{}", 'x', {{n: "{}"}})"#,
                sent[0].value, sent[1].value
            )
        );
        assert_eq!(call_values(r#"add(1, 2)"#), []);
        assert_eq!(call_values(r#"greet("bob")"#)[0].value, "bob");
    }

    #[test]
    fn tokens_are_found_in_text() {
        let mut tokens = Tokens::new(4);
        let (a, b) = (tokens.token(), tokens.token());
        let text = format!("hello {a}, and {b}! rpr rprXYZ");
        assert_eq!(
            tokens_in(&text).collect::<Vec<_>>(),
            [a.as_str(), b.as_str()]
        );
    }

    fn call<'a>(sent: &'a [Sent], body: &str, fresh: &str) -> CallData<'a> {
        CallData {
            sent,
            answer: vec![("body".to_string(), body.to_string())],
            fresh: vec![fresh.to_string()],
        }
    }

    fn sent(place: &str, value: &str) -> Vec<Sent> {
        vec![Sent {
            place: place.into(),
            value: value.into(),
        }]
    }

    #[test]
    fn another_calls_value_in_an_answer_is_a_leak() {
        let (a, b, c) = (
            sent("header x-user", "rpra"),
            sent("header x-user", "rprb"),
            sent("header x-user", "rprc"),
        );
        let calls = [
            call(&a, "hello, rpra", "hello, rpra"),
            call(&b, "hello, rpra", "hello, rprb"),
            call(&c, "hello, rpra", "hello, rprc"),
        ];
        let leaks = find_leaks("reuse, varied", &calls);
        assert_eq!(leaks.len(), 2);
        assert_eq!(
            leaks[1].to_string(),
            "the value of header x-user sent in call 1 appeared in the body of call 3 \
             (reuse, varied: \"rpra\")"
        );
    }

    #[test]
    fn echoes_common_values_and_the_components_own_words_are_not_leaks() {
        let (a, b) = (sent("body", "rpra"), sent("body", "rprb"));
        // Each call echoes its own body.
        let calls = [call(&a, "rpra", "rpra"), call(&b, "rprb", "rprb")];
        assert!(find_leaks("reuse", &calls).is_empty());
        // Short values are not evidence; nor a value fresh instances answer too.
        let (x, y) = (sent("body", "ok"), sent("body", "hello"));
        let z = sent("body", "other");
        let calls = [
            call(&x, "ok", "ok"),
            call(&y, "hello", "hello"),
            call(&z, "ok hello", "ok hello"),
        ];
        assert!(find_leaks("reuse", &calls).is_empty());
        // A value several calls send is nobody's in particular.
        let calls = [
            call(&y, "hello", "hello"),
            call(&y, "hello", "hello"),
            call(&z, "hello", ""),
        ];
        assert!(find_leaks("reuse", &calls).is_empty());
    }
}
