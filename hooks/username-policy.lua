-- username-policy.lua: a site's rules for new localparts.
--
-- After the username is known (from -u, a batch row or the prompt) this hook
-- trims surrounding whitespace and lowercases it, then rejects it when it is
-- reserved, too short, or does not match the site's pattern. A rejection
-- stops the registration before anything is sent to the server.
--
-- Defaults: the built-in reserved list below, a minimum length of 3, and no
-- pattern: every localpart Matrix allows (a-z, 0-9 and =_-./+, such as
-- "a+b", "a/b", "_bot" or "1alice") passes unless the site narrows it. The
-- tool itself refuses what Matrix does not allow.
--
-- Configure it in the tool's section of a config file given with -c:
--
--   register_new_matrix_user:
--     hooks: [/etc/matrix-synapse/hooks/username-policy.lua]
--     username_policy:
--       reserved: [admin, root, support]   # replaces the built-in list
--       also_reserved: [ceo, payroll]       # added to it
--       pattern: "^[a-z][a-z0-9._-]*$"     # a Lua pattern the localpart must match (default: none)
--       min_length: 3
--
-- or with environment variables, which win over the config:
--   RNMU_RESERVED_NAMES="admin,root"   RNMU_USERNAME_PATTERN="^[a-z]+$"
--   RNMU_USERNAME_MIN_LENGTH=3

local DEFAULT_RESERVED = {
  "admin", "administrator", "root", "support", "help", "security", "abuse",
  "postmaster", "hostmaster", "webmaster", "noreply", "no-reply", "system",
  "moderator", "mod", "bot", "server", "synapse", "matrix", "everyone",
}

local function split(s)
  local out = {}
  for item in string.gmatch(s, "[^,%s]+") do out[#out + 1] = item end
  return out
end

local function settings()
  local cfg = (rnmu.config and rnmu.config.username_policy) or {}
  local reserved = cfg.reserved or DEFAULT_RESERVED
  local env_reserved = rnmu.env("RNMU_RESERVED_NAMES")
  if env_reserved then reserved = split(env_reserved) end
  local set = {}
  for _, name in ipairs(reserved) do set[string.lower(name)] = true end
  for _, name in ipairs(cfg.also_reserved or {}) do set[string.lower(name)] = true end
  return {
    reserved = set,
    pattern = rnmu.env("RNMU_USERNAME_PATTERN") or cfg.pattern,
    min_length = tonumber(rnmu.env("RNMU_USERNAME_MIN_LENGTH") or cfg.min_length or 3),
  }
end

local policy -- read once per run, on first use

return {
  after_input = function(rec)
    policy = policy or settings()
    local name = string.lower((rec.username or ""):match("^%s*(.-)%s*$"))
    if policy.reserved[name] then
      error(string.format("the username %q is reserved", name))
    end
    if #name < policy.min_length then
      error(string.format("the username %q is shorter than %d characters", name, policy.min_length))
    end
    if policy.pattern and not string.find(name, policy.pattern) then
      error(string.format("the username %q does not match the site's pattern %s", name, policy.pattern))
    end
    rec.username = name
  end,
}
