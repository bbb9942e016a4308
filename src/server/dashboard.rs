//! The live availability dashboard: the Vite + React app in `dashboard/`,
//! embedded in the binary from its committed build in `dashboard/dist/`, so
//! that `tourcast --demo` serves it at `/` on a machine without Node.
//!
//! [`router`] serves `/index.html` and the content-hashed files under
//! `/assets/`. The `/` route is shared with the WebSocket upgrade that old
//! clients make there, so its handler calls [`index_response`] when the
//! request is not an upgrade.
//!
//! `npm run check-dist` in `dashboard/` (run by `.ci/run`) rebuilds the app and
//! fails when the committed build differs from its sources.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

/// The committed dashboard build.
#[derive(RustEmbed)]
#[folder = "dashboard/dist/"]
struct Assets;

/// Hashed file names never change content: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page itself is revalidated on every load (cheap: ETag → 304).
const REVALIDATE: &str = "no-cache";

/// Routes for the dashboard's files (everything but `/`, see [`index_response`]).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/index.html", get(index))
        .route("/assets/{*path}", get(asset))
}

/// `GET /` (without a WebSocket upgrade) and `GET /index.html`.
pub async fn index(headers: HeaderMap) -> Response {
    index_response(&headers)
}

/// The dashboard page, honouring `If-None-Match`.
pub fn index_response(headers: &HeaderMap) -> Response {
    serve("index.html", headers, REVALIDATE)
}

/// `GET /assets/{path}`: a file of the build, or 404.
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("assets/{path}"), &headers, IMMUTABLE)
}

fn serve(path: &str, headers: &HeaderMap, cache_control: &'static str) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, file.data.into_owned()).into_response()
    };
    let out = response.headers_mut();
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") && !mime.contains("charset") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == etag || v == "*")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn index_is_html_and_revalidated() {
        let response = index(HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let etag = headers[header::ETAG].clone();
        assert!(body(response).await.contains("<div id=\"root\">"));

        let mut conditional = HeaderMap::new();
        conditional.insert(header::IF_NONE_MATCH, etag);
        let response = index(conditional).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert!(body(response).await.is_empty());
    }

    #[tokio::test]
    async fn every_asset_the_page_references_is_served_with_its_type() {
        let page = body(index(HeaderMap::new()).await).await;
        let referenced: Vec<&str> = page
            .split(['"', '\''])
            .filter_map(|s| s.strip_prefix("./assets/"))
            .collect();
        assert!(
            referenced.iter().any(|p| p.ends_with(".js")),
            "no script in {page}"
        );
        assert!(referenced.iter().any(|p| p.ends_with(".css")));
        for path in referenced {
            let response = asset(Path(path.to_string()), HeaderMap::new()).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let expected = if path.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(response.headers()[header::CONTENT_TYPE], expected, "{path}");
            assert_eq!(response.headers()[header::CACHE_CONTROL], IMMUTABLE);
        }
    }

    #[tokio::test]
    async fn unknown_files_are_404() {
        let response = asset(Path("nope.js".into()), HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = asset(Path("../../Cargo.toml".into()), HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
