//! `bitsfarm report --serve`: the reports directory over HTTP for a browser, read-only.
//!
//! Only `GET` and `HEAD`; only files under the root (a path is taken one plain component at a
//! time, no `..`, no hidden names, and what it resolves to, `latest` followed, must still lie
//! under the root); files stream a piece at a time; a directory shows its `index.html` or a
//! listing. Connections are limited and idle ones closed, as every live mode's are.

use std::path::{Component, Path, PathBuf};

use http::{Method, Response, StatusCode, header};
use transport::Body;

/// Serves `root` on `listener` until the task is dropped.
pub async fn serve(root: PathBuf, listener: transport::tcp::TcpListen) -> std::io::Result<()> {
    let root = std::sync::Arc::new(root);
    let handler = move |req: http::Request<hyper::body::Incoming>, _conn, _peer| {
        let root = root.clone();
        async move {
            let head = req.method() == Method::HEAD;
            let mut resp = if req.method() == Method::GET || head {
                answer(&root, req.uri().path())
            } else {
                text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the reports are read-only: GET or HEAD\n",
                )
            };
            if head {
                let len = resp.body().len();
                *resp.body_mut() = Body::empty();
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, http::HeaderValue::from(len));
            }
            resp
        }
    };
    crate::control::serve_small(listener, handler).await
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::from_chunks([bytes::Bytes::from(body.to_owned())]));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The file under `root` a URL path names, or why there is none.
pub fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, StatusCode> {
    let decoded = percent_decode(url_path).ok_or(StatusCode::BAD_REQUEST)?;
    let mut path = root.to_owned();
    for part in decoded.split('/').filter(|p| !p.is_empty()) {
        let plain = matches!(
            Path::new(part).components().next(),
            Some(Component::Normal(_))
        ) && Path::new(part).components().count() == 1;
        if !plain || part.starts_with('.') || part.contains('\\') {
            return Err(StatusCode::NOT_FOUND);
        }
        path.push(part);
    }
    let real = std::fs::canonicalize(&path).map_err(|_| StatusCode::NOT_FOUND)?;
    let real_root = std::fs::canonicalize(root).map_err(|_| StatusCode::NOT_FOUND)?;
    if real.starts_with(&real_root) {
        Ok(real)
    } else {
        Err(StatusCode::NOT_FOUND)
    }
}

fn answer(root: &Path, url_path: &str) -> Response<Body> {
    let path = match resolve(root, url_path) {
        Ok(p) => p,
        Err(status) => {
            return text(status, &format!("no report at {url_path}\n"));
        }
    };
    if path.is_dir() {
        // Relative links in a directory's page need the trailing slash.
        if !url_path.ends_with('/') {
            let mut r = text(StatusCode::MOVED_PERMANENTLY, "");
            if let Ok(v) = http::HeaderValue::from_str(&format!("{url_path}/")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        let index = path.join("index.html");
        if index.is_file() {
            return file(&index);
        }
        return listing(&path, url_path);
    }
    file(&path)
}

fn file(path: &Path) -> Response<Body> {
    let opened = std::fs::File::open(path).and_then(|f| Ok((f.metadata()?.len(), f)));
    let Ok((len, f)) = opened else {
        return text(StatusCode::NOT_FOUND, "cannot read that file\n");
    };
    let mut r = Response::new(Body::streamed(
        len,
        transport::body::file_chunks(f, len, 256 * 1024),
    ));
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("xml") => "application/xml",
        _ => "text/plain; charset=utf-8",
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    r
}

fn listing(dir: &Path, url_path: &str) -> Response<Body> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    (!name.starts_with('.')).then(|| (name, e.path().is_dir()))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut items = String::from("<li><a href=\"../\">../</a></li>");
    for (name, is_dir) in names {
        let shown = if is_dir { format!("{name}/") } else { name };
        items.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>",
            report::escape(&percent_encode(&shown)),
            report::escape(&shown)
        ));
    }
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{0}</title></head>\
         <body><h1>{0}</h1><ul>{items}</ul></body></html>\n",
        report::escape(url_path)
    );
    let mut r = Response::new(Body::from_chunks([bytes::Bytes::from(html)]));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// `%XX` decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.contains('\0')).then_some(text)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_under_the_root_resolve() {
        let root = std::env::temp_dir().join(format!("bitsfarm-browse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a/run")).unwrap();
        std::fs::write(root.join("a/run/report.html"), "x").unwrap();
        std::fs::write(root.join(".hidden"), "x").unwrap();
        std::os::unix::fs::symlink("a/run", root.join("latest")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let real = std::fs::canonicalize(&root).unwrap();
        assert_eq!(
            resolve(&root, "/a/run/report.html"),
            Ok(real.join("a/run/report.html"))
        );
        assert_eq!(
            resolve(&root, "/latest/report.html"),
            Ok(real.join("a/run/report.html"))
        );
        assert_eq!(resolve(&root, "/a%2Frun/"), Ok(real.join("a/run")));
        for bad in [
            "/../etc/passwd",
            "/a/../../etc",
            "/%2e%2e/etc",
            "/.hidden",
            "/escape/passwd",
            "/missing",
        ] {
            assert_eq!(resolve(&root, bad), Err(StatusCode::NOT_FOUND), "{bad}");
        }
        assert_eq!(resolve(&root, "/%zz"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(resolve(&root, "/a%00"), Err(StatusCode::BAD_REQUEST));
        let _ = std::fs::remove_dir_all(&root);
    }
}
