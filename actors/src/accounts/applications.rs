//! Applications and their bots: creating, reading, editing, and resetting bot tokens.

use super::*;

impl AccountService {
    pub(super) fn wire_application(
        rec: &ApplicationRecord,
        owner: Option<User>,
        bot: Option<User>,
    ) -> Application {
        Application {
            id: rec.id,
            name: rec.name.clone(),
            icon: None,
            description: rec.description.clone(),
            bot_public: true,
            bot_require_code_grant: false,
            verify_key: rec.verify_key.clone(),
            flags: rec.flags,
            owner,
            bot,
        }
    }

    pub(super) async fn application_view(
        &self,
        rec: &ApplicationRecord,
    ) -> Result<Application, ApiError> {
        let owner = self.users.get(rec.owner_id).await.map_err(store_err)?;
        let bot = self.users.get(rec.bot_user_id).await.map_err(store_err)?;
        Ok(Self::wire_application(rec, owner, bot))
    }

    /// Creates an application and its bot user (no token yet: reset one to get it).
    pub async fn create_application(
        &self,
        who: Principal,
        body: CreateApplication,
    ) -> Result<Application, ApiError> {
        if who.bot {
            return Err(ApiError::new(
                403,
                ErrorCode::BotsCannotUse,
                "Bots cannot use this endpoint",
            ));
        }
        body.validate()?;
        let id = self.ids.next_id();
        let bot_id = self.ids.next_id();
        let base: String = body
            .name
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        // Usernames are unique; the id suffix keeps two bots of the same name apart.
        let username = format!("{}_{:04}", base.trim_matches('.'), bot_id.get() % 10_000);
        let bot = User {
            global_name: Some(body.name.clone()),
            bot: true,
            mfa_enabled: Some(false),
            verified: Some(true),
            ..User::new(bot_id, username)
        };
        let rec = ApplicationRecord {
            id,
            name: body.name,
            description: body.description.unwrap_or_default(),
            owner_id: who.user_id,
            bot_user_id: bot_id,
            verify_key: auth::hash_token(&auth::new_refresh_token()),
            flags: 0,
        };
        self.stores
            .applications
            .create_application(&rec, &bot)
            .await
            .map_err(store_err)?;
        self.users.refresh(&bot);
        self.application_view(&rec).await
    }

    /// An application its owner may see; anyone else gets 404, never data.
    pub async fn owned_application(
        &self,
        who: Principal,
        id: Snowflake,
    ) -> Result<ApplicationRecord, ApiError> {
        match self
            .stores
            .applications
            .get_application(id)
            .await
            .map_err(store_err)?
        {
            Some(app) if app.owner_id == who.user_id => Ok(app),
            _ => Err(ApiError::unknown(ErrorCode::UnknownApplication)),
        }
    }

    pub async fn get_application(
        &self,
        who: Principal,
        id: Snowflake,
    ) -> Result<Application, ApiError> {
        let rec = self.owned_application(who, id).await?;
        self.application_view(&rec).await
    }

    /// Issues a new bot token; the previous one stops working at once.
    pub async fn reset_bot_token(&self, who: Principal, id: Snowflake) -> Result<String, ApiError> {
        let rec = self.owned_application(who, id).await?;
        let token = auth::new_bot_token(rec.bot_user_id.get());
        self.stores
            .applications
            .set_bot_token(rec.bot_user_id, &auth::hash_token(&token))
            .await
            .map_err(store_err)?;
        self.bot_tokens
            .retain(|_, (bot, _)| *bot != rec.bot_user_id);
        self.publish(Invalidation::BotTokenReset {
            bot_user_id: rec.bot_user_id,
        })
        .await;
        Ok(token)
    }

    /// Edits an application's description and limited intent flags. `id` is `None` for the
    /// calling bot's own application (`@me`); otherwise the caller must own it.
    pub async fn modify_application(
        &self,
        who: Principal,
        id: Option<Snowflake>,
        body: ModifyApplication,
    ) -> Result<Application, ApiError> {
        let mut rec = match id {
            Some(id) => self.owned_application(who, id).await?,
            None => self
                .stores
                .applications
                .application_by_bot(who.user_id)
                .await
                .map_err(store_err)?
                .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownApplication))?,
        };
        body.validate(rec.flags)?;
        if let Some(d) = body.description {
            rec.description = d;
        }
        if let Some(f) = body.flags {
            rec.flags = f;
        }
        if !self
            .stores
            .applications
            .update_application(&rec)
            .await
            .map_err(store_err)?
        {
            return Err(ApiError::unknown(ErrorCode::UnknownApplication));
        }
        self.application_view(&rec).await
    }

    /// `GET /oauth2/applications/@me`: the calling bot's application.
    pub async fn current_application(&self, who: Principal) -> Result<Application, ApiError> {
        let rec = self
            .stores
            .applications
            .application_by_bot(who.user_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownApplication))?;
        self.application_view(&rec).await
    }

    pub async fn application(&self, id: Snowflake) -> Result<ApplicationRecord, ApiError> {
        self.stores
            .applications
            .get_application(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| ApiError::unknown(ErrorCode::UnknownApplication))
    }
}
