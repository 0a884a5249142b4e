//! The dispatch table: every guild request, to its handler.
//!
//! Most handlers answer before the actor takes its next request: [`answer`] sends what they
//! return, typed by the request ([`Request::Reply`]), so a handler that returned the wrong type
//! would not compile. Message writes and reads answer later, through the [`Responder`] they are
//! handed (message writes from the commit queue, in submission order; reads from a task of their
//! own).

use enrichment_protocol::ApiError;
use ractor::RpcReplyPort;

use super::actor::GuildActorState;
use super::requests::*;

/// Sends a handler's answer to the request `R`.
fn answer<R: Request>(port: RpcReplyPort<AnyResult>, result: Result<R::Reply, ApiError>) {
    Responder::<R>::new(port).send(result);
}

impl GuildActorState {
    /// Runs one request.
    pub(super) async fn dispatch(&mut self, envelope: Envelope, port: RpcReplyPort<AnyResult>) {
        let Envelope { caller, request } = envelope;
        let actor = caller.actor;
        // Discord keeps 512 characters of a reason; a request from another node is held to it
        // here too.
        self.caller = Caller {
            reason: caller.reason.map(|r| r.chars().take(512).collect()),
            ..caller
        };
        if let Some(refusal) = self.private_refusal(&request) {
            let _ = port.send(Err(refusal));
            return;
        }
        let private = self.state.is_private();
        match request {
            // ------------------------------------------------ private channels
            AnyRequest::GetChannel(_) if private => {
                answer::<GetChannel>(port, self.get_private_channel(actor).await)
            }
            AnyRequest::ModifyChannel(r) if private => {
                answer::<ModifyChannel>(port, self.modify_private_channel(actor, r.body).await)
            }
            AnyRequest::DeleteChannel(_) if private => {
                answer::<DeleteChannel>(port, self.delete_private_channel(actor).await)
            }
            AnyRequest::AddRecipient(r) => {
                answer::<AddRecipient>(port, self.add_group_recipient(actor, r.user_id).await)
            }
            AnyRequest::RemoveRecipient(r) => {
                answer::<RemoveRecipient>(port, self.remove_group_recipient(actor, r.user_id).await)
            }
            AnyRequest::RefreshBlocks(RefreshBlocks {}) => {
                answer::<RefreshBlocks>(port, self.refresh_blocks().await)
            }
            // ------------------------------------------------ emojis
            AnyRequest::ListEmojis(ListEmojis {}) => {
                answer::<ListEmojis>(port, self.list_emojis(actor).await)
            }
            AnyRequest::GetEmoji(r) => {
                answer::<GetEmoji>(port, self.get_emoji(actor, r.emoji_id).await)
            }
            AnyRequest::CheckEmoji(r) => {
                answer::<CheckEmoji>(port, self.check_emoji(actor, r.animated))
            }
            AnyRequest::CreateEmoji(r) => {
                answer::<CreateEmoji>(port, self.create_emoji(actor, r).await)
            }
            AnyRequest::ModifyEmoji(r) => {
                answer::<ModifyEmoji>(port, self.modify_emoji(actor, r.emoji_id, r.body).await)
            }
            AnyRequest::DeleteEmoji(r) => {
                answer::<DeleteEmoji>(port, self.delete_emoji(actor, r.emoji_id).await)
            }
            // ------------------------------------------------ the guild
            AnyRequest::GetGuild(GetGuild {}) => answer::<GetGuild>(port, self.get_guild(actor)),
            AnyRequest::GetPartialGuild(GetPartialGuild {}) => {
                answer::<GetPartialGuild>(port, self.partial_guild(actor))
            }
            AnyRequest::ModifyGuild(r) => {
                answer::<ModifyGuild>(port, self.modify_guild(actor, r.body).await)
            }
            AnyRequest::DeleteGuild(DeleteGuild {}) => {
                answer::<DeleteGuild>(port, self.delete_guild(actor).await)
            }
            // ------------------------------------------------ channels
            AnyRequest::ListChannels(ListChannels {}) => {
                answer::<ListChannels>(port, self.list_channels(actor))
            }
            AnyRequest::CreateChannel(r) => {
                answer::<CreateChannel>(port, self.create_channel(actor, r.body).await)
            }
            AnyRequest::ModifyChannelPositions(r) => answer::<ModifyChannelPositions>(
                port,
                self.channel_positions(actor, r.positions).await,
            ),
            AnyRequest::GetChannel(r) => {
                answer::<GetChannel>(port, self.get_channel(actor, r.channel_id))
            }
            AnyRequest::ModifyChannel(r) => answer::<ModifyChannel>(
                port,
                self.modify_channel(actor, r.channel_id, r.body).await,
            ),
            AnyRequest::DeleteChannel(r) => {
                answer::<DeleteChannel>(port, self.delete_channel(actor, r.channel_id).await)
            }
            AnyRequest::EditOverwrite(r) => answer::<EditOverwrite>(
                port,
                self.edit_overwrite(actor, r.channel_id, r.target, r.body)
                    .await,
            ),
            AnyRequest::DeleteOverwrite(r) => answer::<DeleteOverwrite>(
                port,
                self.delete_overwrite(actor, r.channel_id, r.target).await,
            ),
            // ------------------------------------------------ roles
            AnyRequest::ListRoles(ListRoles {}) => {
                answer::<ListRoles>(port, self.list_roles(actor))
            }
            AnyRequest::CreateRole(r) => {
                answer::<CreateRole>(port, self.create_role(actor, r.body).await)
            }
            AnyRequest::ModifyRole(r) => {
                answer::<ModifyRole>(port, self.modify_role(actor, r.role_id, r.body).await)
            }
            AnyRequest::DeleteRole(r) => {
                answer::<DeleteRole>(port, self.delete_role(actor, r.role_id).await)
            }
            AnyRequest::ModifyRolePositions(r) => {
                answer::<ModifyRolePositions>(port, self.role_positions(actor, r.positions).await)
            }
            // ------------------------------------------------ members and bans
            AnyRequest::ListMembers(r) => {
                answer::<ListMembers>(port, self.list_members(actor, r.limit, r.after).await)
            }
            AnyRequest::GetMember(r) => {
                answer::<GetMember>(port, self.get_member(actor, r.user_id).await)
            }
            AnyRequest::ModifyMember(r) => {
                answer::<ModifyMember>(port, self.modify_member(actor, r.user_id, r.body).await)
            }
            AnyRequest::ModifyCurrentMember(r) => {
                answer::<ModifyCurrentMember>(port, self.modify_current_member(actor, r.nick).await)
            }
            AnyRequest::AddMemberRole(r) => answer::<AddMemberRole>(
                port,
                self.member_role(actor, r.user_id, r.role_id, true).await,
            ),
            AnyRequest::RemoveMemberRole(r) => answer::<RemoveMemberRole>(
                port,
                self.member_role(actor, r.user_id, r.role_id, false).await,
            ),
            AnyRequest::RemoveMember(r) => {
                answer::<RemoveMember>(port, self.kick(actor, r.user_id).await)
            }
            AnyRequest::LeaveGuild(LeaveGuild {}) => {
                answer::<LeaveGuild>(port, self.leave(actor).await)
            }
            AnyRequest::ListBans(ListBans {}) => {
                answer::<ListBans>(port, self.list_bans(actor).await)
            }
            AnyRequest::GetBan(r) => answer::<GetBan>(port, self.get_ban(actor, r.user_id).await),
            AnyRequest::CreateBan(r) => answer::<CreateBan>(
                port,
                self.ban(actor, r.user_id, r.delete_message_seconds).await,
            ),
            AnyRequest::RemoveBan(r) => {
                answer::<RemoveBan>(port, self.unban(actor, r.user_id).await)
            }
            // ------------------------------------------------ invites and bots
            AnyRequest::CreateInvite(r) => {
                answer::<CreateInvite>(port, self.create_invite(actor, r.channel_id, r.body).await)
            }
            AnyRequest::ListGuildInvites(ListGuildInvites {}) => {
                answer::<ListGuildInvites>(port, self.list_guild_invites(actor).await)
            }
            AnyRequest::ListChannelInvites(r) => answer::<ListChannelInvites>(
                port,
                self.list_channel_invites(actor, r.channel_id).await,
            ),
            AnyRequest::DeleteInvite(r) => {
                answer::<DeleteInvite>(port, self.delete_invite(actor, r.code).await)
            }
            AnyRequest::GetInvite(r) => answer::<GetInvite>(port, self.get_invite(r.code).await),
            AnyRequest::AcceptInvite(r) => {
                answer::<AcceptInvite>(port, self.accept_invite(actor, r.code).await)
            }
            AnyRequest::AddBot(r) => answer::<AddBot>(
                port,
                self.add_bot(actor, r.bot_user_id, r.application_name, r.permissions)
                    .await,
            ),
            // ------------------------------------------------ messages
            AnyRequest::CreateMessage(r) => {
                self.create_message(actor, r, Responder::new(port)).await
            }
            AnyRequest::CheckUpload(r) => {
                answer::<CheckUpload>(port, self.check_upload(actor, r.channel_id))
            }
            AnyRequest::GetMessage(r) => self.get_message(actor, r, Responder::new(port)),
            AnyRequest::ListMessages(r) => self.list_messages(actor, r, Responder::new(port)),
            AnyRequest::EditMessage(r) => self.edit_message(actor, r, Responder::new(port)).await,
            AnyRequest::DeleteMessage(r) => {
                self.delete_message(actor, r, Responder::new(port)).await
            }
            AnyRequest::BulkDeleteMessages(r) => answer::<BulkDeleteMessages>(
                port,
                self.bulk_delete(actor, r.channel_id, r.message_ids).await,
            ),
            AnyRequest::AddReaction(r) => answer::<AddReaction>(
                port,
                self.add_reaction(actor, r.channel_id, r.message_id, r.emoji)
                    .await,
            ),
            AnyRequest::RemoveReaction(r) => answer::<RemoveReaction>(
                port,
                self.remove_reaction(actor, r.channel_id, r.message_id, r.emoji, r.user_id)
                    .await,
            ),
            AnyRequest::ListReactions(r) => {
                self.list_reactions(actor, r, Responder::new(port)).await
            }
            AnyRequest::RemoveAllReactions(r) => answer::<RemoveAllReactions>(
                port,
                self.remove_all_reactions(actor, r.channel_id, r.message_id, r.emoji)
                    .await,
            ),
            AnyRequest::PinMessage(r) => answer::<PinMessage>(
                port,
                self.set_pin(actor, r.channel_id, r.message_id, true).await,
            ),
            AnyRequest::UnpinMessage(r) => answer::<UnpinMessage>(
                port,
                self.set_pin(actor, r.channel_id, r.message_id, false).await,
            ),
            AnyRequest::ListPins(r) => self.list_pins(actor, r, Responder::new(port)),
            AnyRequest::GetAuditLog(r) => self.get_audit_log(actor, r, Responder::new(port)),
            // ------------------------------------------------ webhooks
            AnyRequest::CreateWebhook(r) => answer::<CreateWebhook>(
                port,
                self.create_webhook(actor, r.channel_id, r.body).await,
            ),
            AnyRequest::ListChannelWebhooks(r) => answer::<ListChannelWebhooks>(
                port,
                self.list_webhooks(actor, Some(r.channel_id)).await,
            ),
            AnyRequest::ListGuildWebhooks(ListGuildWebhooks {}) => {
                answer::<ListGuildWebhooks>(port, self.list_webhooks(actor, None).await)
            }
            AnyRequest::GetWebhook(r) => {
                answer::<GetWebhook>(port, self.get_webhook(actor, r.webhook_id, r.token).await)
            }
            AnyRequest::ModifyWebhook(r) => answer::<ModifyWebhook>(
                port,
                self.modify_webhook(actor, r.webhook_id, r.token, r.body)
                    .await,
            ),
            AnyRequest::DeleteWebhook(r) => answer::<DeleteWebhook>(
                port,
                self.delete_webhook(actor, r.webhook_id, r.token).await,
            ),
            AnyRequest::ExecuteWebhook(r) => self.execute_webhook(r, Responder::new(port)).await,
            AnyRequest::GetWebhookMessage(r) => {
                answer::<GetWebhookMessage>(port, self.get_webhook_message(r).await)
            }
            AnyRequest::EditWebhookMessage(r) => {
                self.edit_webhook_message(r, Responder::new(port)).await
            }
            AnyRequest::DeleteWebhookMessage(r) => {
                answer::<DeleteWebhookMessage>(port, self.delete_webhook_message(r).await)
            }
            AnyRequest::TriggerTyping(r) => {
                answer::<TriggerTyping>(port, self.typing(actor, r.channel_id).await)
            }
        }
    }
}
