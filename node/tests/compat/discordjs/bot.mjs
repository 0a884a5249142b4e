// An unmodified discord.js v14 bot, pointed at an Enrichment node only through `rest.api`.
//
// Driven by node/tests/compat/discordjs.rs: it prints one JSON line per observation on stdout
// and, after the steps whose result the test checks on the server, waits for a line on stdin
// before going on. Diagnostics (discord.js debug output, errors) go to stderr.
//
// Environment: ENRICHMENT_API (e.g. http://127.0.0.1:PORT/api), BOT_TOKEN (without "Bot "),
// GUILD_ID, CHANNEL_ID (where the welcome message goes).

import { createInterface } from 'node:readline';
import { Client, Events, GatewayIntentBits, Partials } from 'discord.js';

const { ENRICHMENT_API, BOT_TOKEN, GUILD_ID, CHANNEL_ID } = process.env;
for (const [name, value] of Object.entries({ ENRICHMENT_API, BOT_TOKEN, GUILD_ID, CHANNEL_ID })) {
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
}

const emit = (event, data = {}) => process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);

// Lines from the test, in order; `next()` resolves with the next one.
const lines = [];
const waiting = [];
createInterface({ input: process.stdin }).on('line', (line) => {
  const w = waiting.shift();
  if (w) w(line);
  else lines.push(line);
});
const next = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => waiting.push(r)));

const fail = (where, error) => {
  console.error(`${where}:`, error);
  emit('error', { where, message: String(error?.stack ?? error) });
  process.exit(1);
};
process.on('unhandledRejection', (e) => fail('unhandled rejection', e));

const client = new Client({
  intents: [
    GatewayIntentBits.Guilds,
    GatewayIntentBits.GuildMembers,
    GatewayIntentBits.GuildMessages,
    GatewayIntentBits.GuildMessageReactions,
    GatewayIntentBits.MessageContent,
    GatewayIntentBits.DirectMessages,
  ],
  // DM channels are not in READY: a DM from a user the bot never wrote to arrives for a
  // channel discord.js has not cached.
  partials: [Partials.Channel],
  rest: { api: ENRICHMENT_API },
});
client.on(Events.Debug, (m) => console.error(`[debug] ${m}`));
client.on(Events.Warn, (m) => console.error(`[warn] ${m}`));
client.on(Events.Error, (e) => fail('client error', e));

client.once(Events.ClientReady, (c) => {
  const guild = c.guilds.cache.get(GUILD_ID);
  emit('ready', {
    user_id: c.user.id,
    username: c.user.username,
    application_id: c.application?.id ?? null,
    guild_count: c.guilds.cache.size,
    guild_name: guild?.name ?? null,
    channel_names: guild ? [...guild.channels.cache.values()].map((ch) => ch.name).sort() : [],
    role_count: guild?.roles.cache.size ?? 0,
    member_cached: guild?.members.cache.has(c.user.id) ?? false,
  });
});

client.on(Events.MessageCreate, async (message) => {
  if (message.author.bot) return;
  if (!message.guildId) {
    emit('dm_received', {
      channel_id: message.channelId,
      author_id: message.author.id,
      content: message.content,
      is_dm: message.channel?.isDMBased() ?? null,
    });
    await next();
    await client.destroy();
    emit('done');
    process.exit(0);
  }
  try {
    emit('message_create', {
      id: message.id,
      channel_id: message.channelId,
      guild_id: message.guildId,
      author_id: message.author.id,
      content: message.content,
      channel_name: message.channel?.name ?? null,
    });
    const reply = await message.reply(`pong: ${message.content}`);
    emit('replied', { id: reply.id, reference: reply.reference?.messageId ?? null, content: reply.content });
    await next();

    const reaction = await reply.react('👍');
    emit('reacted', { emoji: reaction.emoji.name, count: reaction.count, me: reaction.me });
    await next();

    const edited = await reply.edit('pong (edited)');
    emit('edited', { id: edited.id, content: edited.content, edited: edited.editedTimestamp !== null });
    await next();

    await reply.delete();
    emit('deleted', { id: reply.id });
  } catch (e) {
    fail('message flow', e);
  }
});

client.on(Events.GuildMemberAdd, async (member) => {
  try {
    const channel = member.guild.channels.cache.get(CHANNEL_ID) ?? (await client.channels.fetch(CHANNEL_ID));
    const sent = await channel.send(`Welcome, ${member.user.username}!`);
    emit('welcomed', { user_id: member.id, username: member.user.username, message_id: sent.id, guild_id: member.guild.id });
    await next();

    // A webhook: created by the bot (MANAGE_WEBHOOKS), posted through with its token
    // (discord.js sends with wait=true), then deleted.
    const hook = await channel.createWebhook({ name: 'Compat hook' });
    const posted = await hook.send({ content: 'from a webhook', username: 'Hooked' });
    emit('webhook_sent', {
      webhook_id: hook.id,
      has_token: Boolean(hook.token),
      message_id: posted.id,
      message_webhook_id: posted.webhookId ?? null,
      author: posted.author?.username ?? null,
    });
    await next();
    await hook.delete();
    emit('webhook_deleted', { webhook_id: hook.id });
    await next();

    // A DM to the newcomer; their answer comes back as a DM message (see MessageCreate).
    const dm = await member.user.createDM();
    const dmSent = await dm.send('Welcome in private');
    emit('dm_sent', { channel_id: dm.id, type: dm.type, recipient_id: dm.recipientId, message_id: dmSent.id, guild_id: dmSent.guildId });
  } catch (e) {
    fail('member flow', e);
  }
});

client.login(BOT_TOKEN).catch((e) => fail('login', e));
