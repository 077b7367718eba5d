//! The OpenAPI 3.1 document of the API, served at `/api/openapi.json`. utoipa generates all of it
//! from the handlers' `#[utoipa::path]` and the request and response types (`doc.rs` lists them);
//! only the configured category codes are filled in at run time. A test compares its operations
//! with the router's.

pub(crate) mod doc;

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use serde_json::Value;
use utoipa::OpenApi;

pub use doc::ApiDoc;

use super::HttpContext;

/// `GET /api/openapi.json`: the document for this server's configuration (its category codes
/// are an enum; queue names are not listed, they are not told to whoever asks).
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    summary = "This document",
    description = "",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1", body = Object)),
)]
pub async fn serve_document(State(ctx): State<Arc<HttpContext>>) -> axum::Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    axum::Json(DOCUMENT.get_or_init(|| document_for(&ctx.settings.category_codes)).clone())
}

/// The document without configured categories (what the route test needs).
pub fn document() -> Value {
    document_for(&[])
}

/// The document, with `categories` (configured codes) as enums. Pure data: built once per process.
pub fn document_for(categories: &[String]) -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the generated document is JSON");
    fill_in_categories(&mut document, categories);
    forbid_nul(&mut document);
    document
}

/// No text the API takes may contain U+0000 (PostgreSQL's text cannot hold it; the API answers
/// 422 on either engine, `http::error`): every free-form string schema says so, so a client (or a
/// fuzzer) knows such a request is not valid rather than finding out.
fn forbid_nul(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let is_string = match object.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            if is_string && !["enum", "const", "format", "pattern"].iter().any(|k| object.contains_key(*k)) {
                object.insert("pattern".into(), Value::from(NO_NUL));
            }
            object.values_mut().for_each(forbid_nul);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// ECMA-262 (and Python) regex: any text without U+0000.
const NO_NUL: &str = "^[^\\u0000]*$";

/// The category codes are configuration: the listing's filter takes one of them or "none", a
/// case's category one of them or null.
fn fill_in_categories(document: &mut Value, categories: &[String]) {
    let codes = || categories.iter().map(|c| Value::from(c.as_str()));
    let filter: Vec<Value> = codes().chain([Value::from("none")]).collect();
    let value: Vec<Value> = codes().chain([Value::Null]).collect();
    document["components"]["schemas"]["CategoryRequest"]["properties"]["category"]["enum"] = Value::Array(value);
    let parameters = document["paths"]["/api/queues/{queue}/cases"]["get"]["parameters"].as_array_mut().expect("listCases parameters");
    let category = parameters.iter_mut().find(|p| p["name"] == "category").expect("the category filter");
    category["schema"]["enum"] = Value::Array(filter);
}

/// Every (method, path) the document describes.
pub fn operations(document: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            out.push((method.clone(), path.clone()));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_free_text_schema_forbids_nul() {
        fn check(value: &Value, at: &str, checked: &mut usize) {
            match value {
                Value::Object(object) => {
                    let free_string =
                        object.get("type").is_some_and(|t| t == "string" || t.as_array().is_some_and(|a| a.iter().any(|t| t == "string")))
                            && !["enum", "const", "format"].iter().any(|k| object.contains_key(*k));
                    if free_string {
                        let pattern = object.get("pattern").and_then(Value::as_str).unwrap_or_else(|| panic!("{at}: no pattern: {value}"));
                        let regex = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{at}: {pattern}: {e}"));
                        assert!(!regex.is_match("a\0b"), "{at}: {pattern} lets U+0000 through");
                        *checked += 1;
                    }
                    object.iter().for_each(|(k, v)| check(v, &format!("{at}/{k}"), checked));
                }
                Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| check(v, &format!("{at}/{i}"), checked)),
                _ => {}
            }
        }
        let mut checked = 0;
        check(&document(), "", &mut checked);
        assert!(checked > 40, "{checked} string schemas");
        assert!(regex::Regex::new(NO_NUL).unwrap().is_match("текст 文本 text"));
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let mut routed: Vec<(String, String)> =
            super::super::routes().list.into_iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        routed.sort();
        let documented = operations(&document());
        let missing: Vec<_> = routed.iter().filter(|r| !documented.contains(r)).collect();
        let extra: Vec<_> = documented.iter().filter(|d| !routed.contains(d)).collect();
        assert!(missing.is_empty(), "routes missing from the OpenAPI document: {missing:?}");
        assert!(extra.is_empty(), "documented operations that are not routed: {extra:?}");
    }

    #[test]
    fn references_resolve_and_operation_ids_are_unique() {
        let doc = document();
        let text = doc.to_string();
        let mut ids = std::collections::BTreeSet::new();
        for (method, path) in operations(&doc) {
            let id = doc["paths"][&path][&method]["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
                .to_string();
            assert!(ids.insert(id.clone()), "operationId {id} used twice");
        }
        for piece in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = &piece[..piece.find('"').unwrap()];
            let (kind, name) = target.split_once('/').unwrap();
            assert!(doc["components"][kind][name].is_object(), "dangling $ref {target}");
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }

    /// Every operation that needs a session can answer 403 `two_factor_required` (and `csrf`), so
    /// the document says so for each; the public ones (login, enrolment, this document) need none.
    #[test]
    fn every_authenticated_operation_documents_403() {
        let doc = document();
        let mut public = Vec::new();
        for (method, path) in operations(&doc) {
            let operation = &doc["paths"][&path][&method];
            if operation["security"] == serde_json::json!([{}]) {
                public.push(format!("{method} {path}"));
                continue;
            }
            assert_eq!(
                operation["responses"]["403"]["$ref"], "#/components/responses/Forbidden",
                "{method} {path} needs a session but does not document 403"
            );
        }
        assert!(public.contains(&"post /api/login".to_string()) && public.len() < 8, "{public:?}");
    }

    /// The served document is OpenAPI 3.1 as utoipa models it: it reads back into
    /// `utoipa::openapi::OpenApi` and writes out the same, so no part (the modifiers' included)
    /// is outside the specification's structure. (tests/openapi_fuzz.rs has schemathesis load it too.)
    #[test]
    fn the_document_round_trips_through_the_typed_model() {
        let doc = document_for(&["BZZX".to_string()]);
        for (path, item) in doc["paths"].as_object().unwrap() {
            let typed: utoipa::openapi::PathItem =
                serde_json::from_value(item.clone()).unwrap_or_else(|e| panic!("path {path} is not an OpenAPI path item: {e}"));
            assert_eq!(&serde_json::to_value(&typed).unwrap(), item, "path {path} does not round-trip");
        }
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            let typed: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> =
                serde_json::from_value(schema.clone()).unwrap_or_else(|e| panic!("schema {name} is not a schema: {e}"));
            assert_eq!(&serde_json::to_value(&typed).unwrap(), schema, "schema {name} does not round-trip");
        }
        let typed: utoipa::openapi::OpenApi = serde_json::from_value(doc.clone()).expect("the document reads as utoipa's OpenApi");
        assert!(matches!(typed.openapi, utoipa::openapi::OpenApiVersion::Version31));
        assert_eq!(serde_json::to_value(&typed).unwrap(), doc, "the document does not round-trip");
        let listing = &doc["paths"]["/api/queues/{queue}/cases"]["get"]["parameters"];
        let category = listing.as_array().unwrap().iter().find(|p| p["name"] == "category").unwrap();
        assert_eq!(category["schema"]["enum"], serde_json::json!(["BZZX", "none"]));
    }

    /// `DUMP_OPENAPI=FILE cargo test --lib dump_document` writes the document (with one category)
    /// to FILE, to compare it with an earlier one.
    #[test]
    fn dump_document() {
        if let Ok(path) = std::env::var("DUMP_OPENAPI") {
            std::fs::write(path, serde_json::to_string_pretty(&document_for(&["BZZX".to_string()])).unwrap()).unwrap();
        }
    }
}
