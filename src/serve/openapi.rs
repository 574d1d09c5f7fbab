//! The route table's documentation and the OpenAPI 3.1 document made from
//! it. The router is built from the same table ([`super::routes`]), so
//! the document cannot name a route the server lacks, nor miss one.

use serde_json::{Map, Value, json};

/// Where a parameter goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum In {
    /// A `{name}` segment of the path.
    Path,
    /// A query string parameter.
    Query,
}

/// One route as documented.
#[derive(Clone, Debug)]
pub(crate) struct RouteDoc {
    /// `get` or `post`.
    pub(crate) method: &'static str,
    /// The path, `{name}` for a path parameter.
    pub(crate) path: &'static str,
    /// What it does.
    pub(crate) summary: &'static str,
    /// `(name, where, description)`.
    pub(crate) params: &'static [(&'static str, In, &'static str)],
    /// The request body's media type, if it takes one.
    pub(crate) body: Option<&'static str>,
    /// The status of success and the media type answered with it.
    pub(crate) ok: (u16, &'static str),
}

/// The OpenAPI document of `routes`.
pub(crate) fn document(routes: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let params: Vec<Value> = (route.params.iter())
            .map(|(name, at, description)| {
                json!({
                    "name": name,
                    "in": match at { In::Path => "path", In::Query => "query" },
                    "required": matches!(at, In::Path),
                    "description": description,
                    "schema": {"type": "string"},
                })
            })
            .collect();
        let mut operation = json!({
            "summary": route.summary,
            "parameters": params,
            "responses": {
                route.ok.0.to_string(): {
                    "description": "success",
                    "content": {route.ok.1: {}},
                },
                "4XX": {
                    "description": "the request's fault: the message names what is wrong",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        });
        if let Some(kind) = route.body {
            operation["requestBody"] = json!({"content": {kind: {}}});
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "fuseflow serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Publish pipelines, trigger runs and read the run history of one \
                            fuseflow workspace (see docs/rest-api.md).",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    })
}
