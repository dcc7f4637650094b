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
--
-- or with environment variables, which win over the config:
--   RNMU_WELCOME_TOKEN (the token itself), RNMU_WELCOME_MESSAGE,
--   RNMU_WELCOME_ROOMS (comma-separated).
-- In the message, {user_id}, {username} and {displayname} are filled in.
-- The bot must be allowed to invite to the listed rooms, or they must be public.

local function split(s)
  local out = {}
  for item in string.gmatch(s, "[^,%s]+") do out[#out + 1] = item end
  return out
end

local function settings()
  local cfg = (rnmu.config and rnmu.config.welcome) or {}
  local token = rnmu.env("RNMU_WELCOME_TOKEN")
  if not token and cfg.token_env then token = rnmu.env(cfg.token_env) end
  local rooms = cfg.rooms or {}
  local env_rooms = rnmu.env("RNMU_WELCOME_ROOMS")
  if env_rooms then rooms = split(env_rooms) end
  return {
    token = token,
    message = rnmu.env("RNMU_WELCOME_MESSAGE") or cfg.message
      or "Welcome, {displayname}! Your account {user_id} is ready.",
    rooms = rooms,
  }
end

local s

local function fill(template, rec)
  local values = {
    user_id = rec.user_id or "",
    username = rec.username or "",
    displayname = rec.displayname or rec.username or "",
  }
  return (string.gsub(template, "{([%w_]+)}", function(k) return values[k] end))
end

return {
  -- Fail before anything is created when the bot cannot act.
  before_input = function(rec, ctx)
    s = s or settings()
    if not s.token or s.token == "" then
      error("welcome.lua needs the bot's access token: set RNMU_WELCOME_TOKEN, or welcome.token_env in the config")
    end
  end,

  before_submit = function(rec, ctx)
    if #s.rooms > 0 then rec.want_session = true end
  end,

  -- The session (if any) is still open here; the post stage closes it.
  before_post = function(rec, ctx)
    if rec.outcome ~= "registered" then return end
    local room = rnmu.matrix.dm(s.token, rec.user_id)
    rnmu.matrix.send_text(s.token, room, fill(s.message, rec))
    rnmu.log.info("welcomed " .. rec.user_id .. " in " .. room)
    for _, r in ipairs(s.rooms) do
      local ok, err = pcall(rnmu.matrix.invite, s.token, r, rec.user_id)
      if not ok then rnmu.log.debug("invite to " .. r .. " failed (public room?): " .. tostring(err)) end
      rnmu.matrix.join(rec.access_token, r)
      rnmu.log.info("joined " .. rec.user_id .. " to " .. r)
    end
  end,
}
