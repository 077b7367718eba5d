//! The app-password part of `/settings` (`access::app_passwords`): list, create (the password is
//! shown on that answer only), revoke. Plain forms; each answer is the settings page.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{PageError, render};
use super::session::{NoFields, PageSession, Posted, see_other};
use super::settings::SettingsPage;
use super::two_factor::TwoFactorPanel;
use crate::access::app_passwords::AppPasswordError;
use crate::http::HttpContext;

#[derive(Deserialize)]
pub struct DeviceForm {
    #[serde(default)]
    device: String,
}

async fn page(ctx: &HttpContext, session: &PageSession, status: StatusCode, adjust: impl FnOnce(&mut TwoFactorPanel)) -> Response {
    match TwoFactorPanel::load(ctx, session).await {
        Ok(mut panel) => {
            adjust(&mut panel);
            render(status, &SettingsPage::new(session.chrome(ctx), session.preferences, false, panel))
        }
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}

/// `POST /settings/app-passwords`: a new app password, shown on this answer only.
pub async fn create(State(ctx): State<Arc<HttpContext>>, Posted { session, form }: Posted<DeviceForm>) -> Response {
    match ctx.access.create_app_password(&session.principal, &form.device).await {
        Ok((listed, password)) => page(&ctx, &session, StatusCode::OK, |p| p.new_app_password = Some((listed.device, password))).await,
        Err(AppPasswordError::BadDevice | AppPasswordError::Exists | AppPasswordError::TooMany) => {
            page(&ctx, &session, StatusCode::UNPROCESSABLE_ENTITY, |p| p.app_problem = Some("settings.app_bad")).await
        }
        Err(AppPasswordError::NotFound) => see_other("/settings"),
        Err(AppPasswordError::Store(e)) => PageError::internal(session.lang, e).into_response(),
    }
}

/// `POST /settings/app-passwords/{id}/revoke`.
pub async fn revoke(State(ctx): State<Arc<HttpContext>>, Path(id): Path<String>, Posted { session, .. }: Posted<NoFields>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return see_other("/settings") };
    match ctx.access.revoke_app_password(&session.principal, id).await {
        Ok(()) | Err(AppPasswordError::NotFound) => see_other("/settings"),
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}
