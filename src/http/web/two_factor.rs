//! The two-factor part of `/settings` (`access::two_factor`): start an enrolment (the page then
//! shows the secret and its QR code, drawn here as inline SVG by the `qrcode` crate), confirm it
//! with a first code (the recovery codes are shown on that answer only), switch it off with a
//! code. Plain forms; each answer is the settings page.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;

use super::error::{PageError, render};
use super::session::{NoFields, PageSession, Posted, see_other};
use super::settings::SettingsPage;
use crate::access::two_factor::TwoFactorError;
use crate::http::HttpContext;
use crate::store::StoreError;

/// What the settings page shows of two-factor login.
#[derive(Default)]
pub struct TwoFactorPanel {
    pub enabled: bool,
    pub recovery_codes_left: i64,
    /// An enrolment waiting for its first code: the secret (base32) and its QR code (SVG).
    pub enrolment: Option<(String, String)>,
    /// Shown once, right after the confirmation.
    pub recovery_codes: Vec<String>,
    /// Why the last code was refused (a catalog key).
    pub problem: Option<&'static str>,
    /// The user's role requires two-factor login and he has not enrolled yet.
    pub required: bool,
    /// The user's app passwords for IMAP.
    pub app_passwords: Vec<crate::store::app_passwords::Listed>,
    /// (device, password) of the one just created: shown on this answer only.
    pub new_app_password: Option<(String, String)>,
    /// Why the last app-password form was refused (a catalog key).
    pub app_problem: Option<&'static str>,
}

/// The `otpauth://` URI as an SVG QR code, to inline in the page (no XML declaration).
pub fn qr_svg(uri: &str) -> Option<String> {
    let image = QrCode::new(uri.as_bytes()).ok()?.render::<svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    Some(image.split_once("?>").map_or(image.clone(), |(_, rest)| rest.to_string()))
}

impl TwoFactorPanel {
    pub async fn load(ctx: &HttpContext, session: &PageSession) -> Result<TwoFactorPanel, StoreError> {
        let status = ctx.access.two_factor_status(session.principal.user_id).await?;
        let enrolment = match ctx.access.pending_totp(&session.principal).await? {
            Some(e) => qr_svg(&e.uri).map(|svg| (e.secret.to_string(), svg)),
            None => None,
        };
        Ok(TwoFactorPanel {
            enabled: status.enabled,
            recovery_codes_left: status.recovery_codes_left,
            enrolment,
            required: session.principal.two_factor_missing,
            app_passwords: ctx.access.app_passwords(&session.principal).await?,
            ..Default::default()
        })
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
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

/// `POST /settings/totp`: a new secret; the page shows it.
pub async fn start(State(ctx): State<Arc<HttpContext>>, Posted { session, .. }: Posted<NoFields>) -> Response {
    match ctx.access.start_totp(&session.principal).await {
        Ok(_) | Err(TwoFactorError::AlreadyOn) => see_other("/settings"),
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}

/// `POST /settings/totp/confirm`: on with the first code; the answer lists the recovery codes.
pub async fn confirm(State(ctx): State<Arc<HttpContext>>, Posted { session, form }: Posted<CodeForm>) -> Response {
    match ctx.access.confirm_totp(&session.principal, &form.code).await {
        Ok(codes) => page(&ctx, &session, StatusCode::OK, |p| p.recovery_codes = codes).await,
        Err(TwoFactorError::WrongCode) => {
            page(&ctx, &session, StatusCode::UNPROCESSABLE_ENTITY, |p| p.problem = Some("settings.totp_wrong")).await
        }
        Err(TwoFactorError::NotStarted | TwoFactorError::AlreadyOn) => see_other("/settings"),
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}

/// `POST /settings/totp/disable`: off, with a current code or a recovery code.
pub async fn disable(
    State(ctx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Posted { session, form }: Posted<CodeForm>,
) -> Response {
    match ctx.access.disable_totp(&session.principal, &form.code, peer.ip()).await {
        Ok(()) | Err(TwoFactorError::NotOn) => see_other("/settings"),
        Err(TwoFactorError::WrongCode) => {
            page(&ctx, &session, StatusCode::UNPROCESSABLE_ENTITY, |p| p.problem = Some("settings.totp_wrong")).await
        }
        Err(TwoFactorError::Throttled) => {
            page(&ctx, &session, StatusCode::TOO_MANY_REQUESTS, |p| p.problem = Some("settings.totp_wrong")).await
        }
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}
