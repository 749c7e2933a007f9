//! `GET /docs`: an OpenAPI document rendered as one HTML page on the
//! server, so that it works offline (no script, no CDN, no asset to
//! fetch): every operation with its summary, description, request body and
//! responses, then every schema as JSON. The document itself is served at
//! `/openapi.json`. [`routes`] serves both for a document.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

/// `GET /openapi.json` (the document) and `GET /docs` (its page), rendered
/// once, as a router to merge into an app's.
pub fn routes<S: Clone + Send + Sync + 'static>(doc: &utoipa::openapi::OpenApi) -> Router<S> {
    let value = serde_json::to_value(doc).unwrap_or_default();
    let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    let html = page(&value);
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], json).into_response()
            }),
        )
        .route("/docs", get(move || async move { Html(html) }))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `#/components/schemas/Name` → a link to the schema's section.
fn schema_link(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", schema_link(items));
    }
    match schema["type"].as_str() {
        Some(t) => esc(t),
        None => "any".into(),
    }
}

fn content_list(content: &Value) -> String {
    content
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(mime, c)| {
                    format!("<code>{}</code>: {}", esc(mime), schema_link(&c["schema"]))
                })
                .collect::<Vec<_>>()
                .join("<br>")
        })
        .unwrap_or_default()
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The page for `doc` (an OpenAPI document as JSON).
pub fn page(doc: &Value) -> String {
    let title = esc(doc["info"]["title"].as_str().unwrap_or("API"));
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1b1b1b}}\
         h2{{border-bottom:1px solid #ccc;margin-top:2rem}} .op{{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;margin:.8rem 0}}\
         .m{{font-weight:700;text-transform:uppercase;display:inline-block;min-width:4rem}} code,pre{{font:13px ui-monospace,monospace}}\
         pre{{background:#f6f6f6;padding:.6rem;overflow-x:auto}} table{{border-collapse:collapse;width:100%}}\
         td,th{{text-align:left;vertical-align:top;padding:.2rem .4rem;border-top:1px solid #eee}} a{{color:#0645ad}}\
         </style></head><body><h1>{title}</h1><p>{}</p><p>OpenAPI {} document: <a href=\"/openapi.json\">/openapi.json</a></p>",
        esc(doc["info"]["description"].as_str().unwrap_or("")),
        esc(doc["openapi"].as_str().unwrap_or("")),
    );
    let mut by_tag: Vec<(String, String)> = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for m in METHODS {
                let op = &item[m];
                if op.is_null() {
                    continue;
                }
                let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
                let mut html = format!(
                    "<div class=\"op\" id=\"{}\"><span class=\"m\">{m}</span> <code>{}</code> — {}",
                    esc(op["operationId"].as_str().unwrap_or(path)),
                    esc(path),
                    esc(op["summary"].as_str().unwrap_or(""))
                );
                if let Some(d) = op["description"].as_str() {
                    html.push_str(&format!("<p>{}</p>", esc(d)));
                }
                if !op["requestBody"].is_null() {
                    html.push_str(&format!(
                        "<p>Request body: {}</p>",
                        content_list(&op["requestBody"]["content"])
                    ));
                }
                html.push_str("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>");
                if let Some(rs) = op["responses"].as_object() {
                    for (status, r) in rs {
                        html.push_str(&format!(
                            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(status),
                            esc(r["description"].as_str().unwrap_or("")),
                            content_list(&r["content"])
                        ));
                    }
                }
                html.push_str("</table></div>");
                by_tag.push((tag, html));
            }
        }
    }
    by_tag.sort_by(|a, b| a.0.cmp(&b.0));
    let mut last = String::new();
    for (tag, html) in by_tag {
        if tag != last {
            out.push_str(&format!("<h2>{}</h2>", esc(&tag)));
            last = tag;
        }
        out.push_str(&html);
    }
    out.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            let json = serde_json::to_string_pretty(s).unwrap_or_default();
            out.push_str(&format!(
                "<h3 id=\"schema-{0}\">{0}</h3><pre>{1}</pre>",
                esc(name),
                esc(&json)
            ));
        }
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_schemas_are_listed_and_text_is_escaped() {
        let doc = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "T <1>", "description": "d"},
            "paths": {"/x": {"post": {"tags": ["a"], "summary": "Make an x", "operationId": "x",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}},
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}}}}}},
            "components": {"schemas": {"X": {"type": "object"}}}
        });
        let html = page(&doc);
        assert!(html.contains("<title>T &lt;1&gt;</title>"), "{html}");
        assert!(html.contains("<code>/x</code> — Make an x"), "{html}");
        assert!(
            html.contains("<a href=\"#schema-X\">X</a>") && html.contains("id=\"schema-X\""),
            "{html}"
        );
        assert!(
            !html.contains("<script") && !html.contains("http://") && !html.contains("https://"),
            "offline: {html}"
        );
    }
}
