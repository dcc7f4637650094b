-- welcome.lua: greet each new user from a bot account.
--
-- After a user is registered, a bot opens a direct chat with them and sends a
-- welcome text. Optionally the new user is also joined to listed rooms: for
-- that the hook asks for a session at registration, joins the rooms as the
-- new user, and the tool logs that session out afterwards.
--
-- Configure it in the tool's section of a config file given with -c:
--
--   register_new_matrix_user:
--     welcome:
--       token_env: WELCOME_BOT_TOKEN      # the variable holding the bot's access token
--       message: "Welcome to Example, {displayname}! Ask here if you need help."
--       rooms: ["#general:example.org", "!abcdef:example.org"]
--       exempt_bot: false                 # true: lift the server's rate limits for the bot
--       accept_invite: true               # false: leave the chat as an invite
--
-- or with environment variables, which win over the config:
--   RNMU_WELCOME_TOKEN (the token itself), RNMU_WELCOME_MESSAGE,
--   RNMU_WELCOME_ROOMS (comma-separated), RNMU_WELCOME_EXEMPT_BOT=1,
--   RNMU_WELCOME_ACCEPT_INVITE=0.
-- In the message, {user_id}, {username} and {displayname} are filled in.
-- The bot must be allowed to invite to the listed rooms, or they must be public.
--
-- Rate limits. Synapse limits how fast one account creates rooms (10 at
-- once, then one a minute by default) and sends messages. The tool waits as
-- long as the server asks, says so once with the pace, and shows the wait on
-- the progress line. With exempt_bot, and a bot that is a server admin, the
-- hook lifts the limits for the bot itself when it starts (Synapse's admin
-- API override_ratelimit), so a large batch runs at the server's speed.
--
-- The chat reads as a chat with the bot. By default the new user has
-- already joined it on first login (the hook asks for a session at
-- registration, accepts the bot's invite as the user, and marks the room as
-- a direct chat with the bot in the user's m.direct), so the welcome text is
-- the first thing they read. With accept_invite: false, the chat waits as an
-- invite the user accepts first.
--
-- Each user is welcomed once. The direct chat is found again rather than
-- made twice (after a lost answer, or when a rerun of the batch finishes a
-- row an earlier run left incomplete), and the message is not sent again
-- when it is already there.

local function split(s)
  local out = {}
  for item in string.gmatch(s, "[^,%s]+") do out[#out + 1] = item end
  return out
end

local function truthy(v)
  return v == true or v == "1" or v == "true" or v == "yes"
end

local function settings()
  local cfg = (rnmu.config and rnmu.config.welcome) or {}
  local token = rnmu.env("RNMU_WELCOME_TOKEN")
  if not token and cfg.token_env then token = rnmu.env(cfg.token_env) end
  local rooms = cfg.rooms or {}
  local env_rooms = rnmu.env("RNMU_WELCOME_ROOMS")
  if env_rooms then rooms = split(env_rooms) end
  local exempt = cfg.exempt_bot
  local env_exempt = rnmu.env("RNMU_WELCOME_EXEMPT_BOT")
  if env_exempt then exempt = truthy(env_exempt) end
  local accept = cfg.accept_invite
  if accept == nil then accept = true end
  local env_accept = rnmu.env("RNMU_WELCOME_ACCEPT_INVITE")
  if env_accept then accept = truthy(env_accept) end
  return {
    token = token,
    message = rnmu.env("RNMU_WELCOME_MESSAGE") or cfg.message
      or "Welcome, {displayname}! Your account {user_id} is ready.",
    rooms = rooms,
    exempt = truthy(exempt),
    accept = truthy(accept),
  }
end

local s
-- Why the bot cannot be used, once known: every later row is refused too.
local refused

local function fill(template, rec)
  local values = {
    user_id = rec.user_id or "",
    username = rec.username or "",
    displayname = rec.displayname or rec.username or "",
  }
  return (string.gsub(template, "{([%w_]+)}", function(k) return values[k] end))
end

local function encode(v)
  return (string.gsub(v, "[^%w%-_.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- Lifts the server's rate limits for the bot (it must be a server admin).
local function exempt_bot()
  local bot = rnmu.matrix.whoami(s.token)
  local r = rnmu.matrix.request{
    method = "POST", token = s.token, ["repeat"] = true, -- setting it twice is setting it once
    path = "/_synapse/admin/v1/users/" .. encode(bot) .. "/override_ratelimit",
    body = { messages_per_second = 0, burst_count = 0 },
  }
  if r.status ~= 200 then
    error("welcome.exempt_bot: the server refused to lift " .. bot .. "'s rate limits ("
      .. r.status .. " " .. tostring(r.json and r.json.errcode)
      .. "); the bot must be a server admin")
  end
  rnmu.log.info("welcome.lua: rate limits lifted for " .. bot)
end

-- Reads the settings once per worker, and exempts the bot if asked to.
local function start(ctx)
  if refused then error(refused, 0) end
  if s then return end
  local got = settings()
  if not got.token or got.token == "" then
    error("welcome.lua needs the bot's access token: set RNMU_WELCOME_TOKEN, or welcome.token_env in the config")
  end
  -- Settings count as read only once the bot is known to be usable, so a
  -- refusal holds for every row of every worker, not only the first.
  if got.exempt and not ctx.dry_run then
    s = got
    local ok, err = pcall(exempt_bot)
    if not ok then
      s = nil
      refused = tostring(err)
      error(refused, 0)
    end
  end
  s = got
end

return {
  -- Fail before anything is created when the bot cannot act.
  before_input = function(rec, ctx) start(ctx) end,

  before_submit = function(rec, ctx)
    if #s.rooms > 0 or s.accept then rec.want_session = true end
  end,

  -- The session (if any) is still open here; the post stage closes it.
  before_post = function(rec, ctx)
    if rec.outcome ~= "registered" then return end
    start(ctx) -- a rerun that finishes an earlier run's row starts here
    local room, existed = rnmu.matrix.dm(s.token, rec.user_id)
    rnmu.matrix.send_text(s.token, room, fill(s.message, rec), { once = existed or ctx.rerun })
    rnmu.log.info("welcomed " .. rec.user_id .. " in " .. room)
    if s.accept and rec.access_token then
      -- As the user: accept the invite, and keep the room as a direct chat
      -- with the bot (what a client does when the user accepts it).
      rnmu.matrix.join(rec.access_token, room)
      s.bot = s.bot or rnmu.matrix.whoami(s.token)
      local r = rnmu.matrix.request{
        method = "PUT", token = rec.access_token, ["repeat"] = true,
        path = "/_matrix/client/v3/user/" .. encode(rec.user_id) .. "/account_data/m.direct",
        body = { [s.bot] = { room } },
      }
      if r.status ~= 200 then
        error("welcome.lua: marking the chat as direct for " .. rec.user_id .. " failed (" .. r.status .. ")")
      end
    end
    for _, r in ipairs(s.rooms) do
      local ok, err = pcall(rnmu.matrix.invite, s.token, r, rec.user_id)
      if not ok then rnmu.log.debug("invite to " .. r .. " failed (public room?): " .. tostring(err)) end
      rnmu.matrix.join(rec.access_token, r)
      rnmu.log.info("joined " .. rec.user_id .. " to " .. r)
    end
  end,
}
