//! `GET /api/v1/images`: the images containers can start from.

use crate::auth::Auth;
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;
use axum::extract::State;
use protocol::ImageInfo;

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth,
) -> Result<ApiJson<Vec<ImageInfo>>, ApiError> {
    let images = state
        .blocking(|rt| rt.images().list().map_err(ApiError::internal))
        .await?;
    Ok(ApiJson(images.iter().map(|i| i.info()).collect()))
}
