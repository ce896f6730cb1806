//! A small well-formedness check for the HTML bitsfarm writes: every element closed in order,
//! attributes quoted, no raw `<` in text, and nothing that reaches outside the file.

const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link"];

/// Checks `html`; returns what is wrong.
pub fn check(html: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let b = html.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            if b[i] == b'>' && stack.last().is_some_and(|t| t != "style") {
                // A '>' in text is legal HTML, but bitsfarm escapes it; seeing one means
                // something was not escaped.
                return Err(format!("raw '>' in text at byte {i}"));
            }
            i += 1;
            continue;
        }
        if html[i..].starts_with("<!DOCTYPE") || html[i..].starts_with("<!--") {
            i += html[i..].find('>').ok_or("unterminated declaration")? + 1;
            continue;
        }
        // Scan to the tag's end, honouring quoted attribute values.
        let mut j = i + 1;
        let mut quote: Option<u8> = None;
        while j < b.len() {
            match (quote, b[j]) {
                (None, b'"') | (None, b'\'') => quote = Some(b[j]),
                (Some(q), c) if c == q => quote = None,
                (None, b'>') => break,
                (None, b'<') => return Err(format!("'<' inside a tag at byte {j}")),
                _ => {}
            }
            j += 1;
        }
        if j >= b.len() {
            return Err(format!("unterminated tag at byte {i}"));
        }
        let tag = &html[i + 1..j];
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?} at byte {i}")),
            }
        } else {
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if name.is_empty() {
                return Err(format!("bad tag {tag:?} at byte {i}"));
            }
            check_attributes(tag).map_err(|e| format!("<{name}> at byte {i}: {e}"))?;
            if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
                if name == "style" {
                    let end = html[j..].find("</style>").ok_or("unclosed <style>")?;
                    i = j + end + "</style>".len();
                    continue;
                }
                stack.push(name);
            }
        }
        i = j + 1;
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    Ok(())
}

fn check_attributes(tag: &str) -> Result<(), String> {
    // After the name: `key="value"` pairs (or a lone `/`).
    let rest = tag.split_once(char::is_whitespace).map_or("", |(_, r)| r);
    let mut chars = rest.trim().trim_end_matches('/').chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let mut key = String::from(c);
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("attribute {key:?} has no value"));
        }
        if chars.next() != Some('"') {
            return Err(format!("attribute {key:?} is not double-quoted"));
        }
        for c in chars.by_ref() {
            if c == '"' {
                break;
            }
        }
    }
    Ok(())
}

/// Checks that the page needs nothing outside itself.
pub fn self_contained(html: &str) -> Result<(), String> {
    for bad in [
        "<script", "<link", "<img", "<iframe", " src=", "url(", "@import",
    ] {
        if html.contains(bad) {
            return Err(format!("contains {bad:?}"));
        }
    }
    // The only URL allowed is the SVG namespace name, which browsers never fetch.
    let stripped = html.replace("http://www.w3.org/2000/svg", "");
    for scheme in ["http://", "https://", "//cdn", "file://"] {
        if stripped.contains(scheme) {
            return Err(format!("refers to {scheme}"));
        }
    }
    Ok(())
}

#[test]
fn the_checker_catches_mistakes() {
    assert!(check("<p>a</p>").is_ok());
    assert!(check("<p>a<b>c</p></b>").is_err());
    assert!(check("<p>a").is_err());
    assert!(check("<p class=x>a</p>").is_err());
    assert!(check("<p>1 > 0</p>").is_err());
    assert!(check(r#"<svg><circle r="1"/></svg>"#).is_ok());
    assert!(self_contained(r#"<svg xmlns="http://www.w3.org/2000/svg"></svg>"#).is_ok());
    assert!(self_contained(r#"<a href="https://x">x</a>"#).is_err());
}
