//! The one error type of the HTTP layer: every refusal says what was wrong and what to do, and
//! renders itself as a status code with a plain-text body (and a log line where the operator
//! should hear of it).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request is answered with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The body is not what the route takes (PnP XML that does not parse, the wrong message).
    #[error("rejected {kind}: {why}")]
    BadRequest {
        /// What was expected, e.g. `work-request`.
        kind: &'static str,
        /// Why it was refused.
        why: String,
    },
    /// Nothing here, or nothing for this client (configs answer 404 to strangers on purpose).
    #[error("{0}")]
    NotFound(String),
    /// An action without the admin token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// An action from a host that may not act.
    #[error("{0}")]
    Forbidden(String),
    /// The action does not apply to the record as it is.
    #[error("{0}")]
    Conflict(String),
    /// Our own failure (a task that panicked): nothing the client can fix.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::Conflict(_) => StatusCode::CONFLICT,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The plain `not found` that day-0 routes give strangers (the log says why, not the body).
    pub(crate) fn not_found() -> HttpError {
        HttpError::NotFound("not found".into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if let HttpError::Internal(e) = &self {
            tracing::error!(error = %e, "request failed inside the server");
        }
        (self.status(), format!("{self}\n")).into_response()
    }
}
