//! The admin API's query and JSON body extractors: axum's, with a refusal
//! in the API's error shape (400 `invalid_query` / `invalid_body` and
//! axum's reason) instead of axum's plain-text one.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::de::DeserializeOwned;

use super::error;

/// A query string, deserialized; refused as `invalid_query`.
#[derive(Debug)]
pub(super) struct ApiQuery<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(query)) => Ok(Self(query)),
            Err(rejection) => Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &rejection.body_text(),
            )),
        }
    }
}

/// A JSON body, deserialized; refused as `invalid_body`.
#[derive(Debug)]
pub(super) struct ApiJson<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(body)) => Ok(Self(body)),
            Err(rejection) => Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &rejection.body_text(),
            )),
        }
    }
}
