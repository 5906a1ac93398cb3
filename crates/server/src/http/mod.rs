//! The HTTP layer: the router, authentication, request extractors, the error shape, the
//! OpenAPI document, the API docs page over it and the dashboard. Handlers parse, check and
//! shape; what they do is in [`crate::app`].

pub mod api_docs;
pub mod auth;
pub mod dashboard;
pub mod embedded;
pub mod error;
pub mod extract;
pub mod forward;
pub mod key_cache;
pub mod openapi;
pub mod qr;
pub mod rate_limit;
pub mod routes;
pub mod state;
pub mod trace;
