//! Every API error becomes `{"error":{"code","message"[,"limit"]}}` with the
//! right status. Handlers return [`ApiError`]; nothing else reaches a client.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::api::{ErrorBody, ErrorDetail};
use runtime::ContainerError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadJson(String),
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than the server accepts")]
    TooLarge,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such container")]
    ContainerNotFound,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    LimitExceeded {
        limit: &'static str,
        message: String,
    },
    #[error("out of capacity: {message}")]
    OutOfCapacity {
        limit: &'static str,
        message: String,
    },
    #[error("too many requests: {limit} reached; retry in {retry_after_secs} s")]
    RateLimited {
        limit: &'static str,
        retry_after_secs: u64,
    },
    #[error("internal error")]
    Internal(String),
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::ContainerNotFound | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::LimitExceeded { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::OutOfCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooLarge => "too_large",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::ContainerNotFound | ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::LimitExceeded { .. } => "limit_exceeded",
            ApiError::OutOfCapacity { .. } => "out_of_capacity",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let limit = match self {
            ApiError::LimitExceeded { limit, .. }
            | ApiError::OutOfCapacity { limit, .. }
            | ApiError::RateLimited { limit, .. } => Some((*limit).to_string()),
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                limit,
            },
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            // The detail stays in the log; the client learns only that it failed.
            tracing::error!(error = %detail, "internal error");
        }
        crate::metrics::global().error(self.code());
        let mut response = (status, Json(self.body())).into_response();
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => ApiError::BadJson(format!("malformed JSON: {e}")),
            JsonRejection::JsonDataError(e) => ApiError::BadRequest(format!("bad field: {e}")),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(format!("bad query: {}", r.body_text()))
    }
}

/// What the runtime's errors mean to a client. Anything unexpected is a 500.
impl From<ContainerError> for ApiError {
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::NotFound(_) | ContainerError::Ambiguous(_) => {
                ApiError::ContainerNotFound
            }
            ContainerError::NameInUse(n) => ApiError::Conflict(format!("the name {n:?} is in use")),
            ContainerError::InvalidName(_) | ContainerError::InvalidHostname(_) => {
                ApiError::BadRequest(e.to_string())
            }
            ContainerError::Network(e @ runtime::network::NetworkError::EgressDisabled) => {
                ApiError::Forbidden(e.to_string())
            }
            ContainerError::Running(_) | ContainerError::NotRunning(_) => {
                ApiError::Conflict(e.to_string())
            }
            ContainerError::Image(runtime::image::ImageError::NotFound { name }) => {
                ApiError::BadRequest(format!("bad field: unknown image {name:?}"))
            }
            ContainerError::Image(e @ runtime::image::ImageError::InvalidName { .. }) => {
                ApiError::BadRequest(format!("bad field: {e}"))
            }
            other => ApiError::internal(other),
        }
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s (JSON bodies, right statuses).
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}
