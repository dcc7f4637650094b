-- generate-password.lua: a strong password when none was given.
--
-- Before anything is asked, this hook checks whether the registration already
-- has a password (-p, --password-file, or a batch row's column). If not, it
-- generates one from the operating system's secure random source, so nobody
-- is prompted, and marks it as generated. The tool then shows it exactly
-- once: after "Success!" as a line "Generated password: ..." for a single
-- registration, or in the "password" field of the results (--output, --json)
-- for batch runs. It is never printed anywhere else.
--
-- Configure it in the tool's section of a config file given with -c:
--
--   register_new_matrix_user:
--     generate_password:
--       length: 24          # 8 to 512
--       symbols: false      # add -_.!~*@#%^+= to the letters and digits
--
-- or with RNMU_PASSWORD_LENGTH, which wins over the config.

local function settings()
  local cfg = (rnmu.config and rnmu.config.generate_password) or {}
  return {
    length = tonumber(rnmu.env("RNMU_PASSWORD_LENGTH") or cfg.length or 24),
    symbols = cfg.symbols == true,
  }
end

local opts

return {
  before_input = function(rec)
    if rec.password ~= nil and rec.password ~= "" then return end
    opts = opts or settings()
    rec.password = rnmu.password({ length = opts.length, symbols = opts.symbols })
    rec.password_generated = true
  end,
}
