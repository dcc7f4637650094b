-- A corpus of calls to string.find, match, gmatch and gsub, run the same in
-- the hooks' sandbox and in the reference interpreter (scripts/ref-lua), whose
-- outputs must be byte for byte the same: results with their types, error
-- values and their messages (with the position prefix Lua adds), argument
-- checks of plain and method calls.
--
-- `...` is MODE [SEED COUNT]: "fixed" runs the hand-written cases and a
-- generated set from seed 1; "random" runs COUNT generated cases from SEED.
local mode, seed, count = ...
mode = mode or "fixed"

local out = {}
local function emit(s) out[#out + 1] = s end

local function show(v)
  local t = math.type(v) or type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "integer" or t == "float" or t == "boolean" or t == "nil" then
    return t .. ":" .. tostring(v)
  end
  return t
end

local function showall(n, ...)
  local parts = {}
  for i = 1, n do parts[i] = show((select(i, ...))) end
  return "(" .. table.concat(parts, ", ") .. ")"
end

-- A call's outcome: its results, or its error value.
local function outcome(f, ...)
  local r = table.pack(pcall(f, ...))
  if r[1] then return "ok " .. showall(r.n - 1, table.unpack(r, 2, r.n)) end
  return "error " .. show(r[2])
end

-- gmatch's matches, at most 50 of them.
local function gmatch_all(s, p, init)
  local iter = string.gmatch(s, p, init)
  local parts = {}
  for _ = 1, 50 do
    local r = table.pack(iter())
    if r[1] == nil then break end
    parts[#parts + 1] = showall(r.n, table.unpack(r, 1, r.n))
  end
  return table.concat(parts, " ")
end

local function case(label, f, ...)
  emit(label .. " -> " .. outcome(f, ...))
end

-- Hand-written cases: each class of the issue's table, and the error paths.
local function fixed()
  local E = setmetatable({}, { __tostring = function() return "E" end })
  case("%z", string.find, "a\0b", "%z")
  case("%Z", string.find, "\0\0b", "%Z+")
  case("[%z]", string.match, "x\0y", "[%z]")
  case("find %", string.find, "a", "%")
  case("match [a", string.match, "a", "[a")
  case("find (a", string.find, "a", "(a")
  case("find a)", string.find, "a", "a)")
  case("find %1", string.find, "a", "%1")
  case("find %b", string.find, "a", "%b")
  case("find %fa", string.find, "a", "%fa")
  case("gsub %2", string.gsub, "abc", "(b)", "%2")
  case("gsub %x", string.gsub, "abc", "b", "%x")
  case("too many captures", string.find, "a", ("()"):rep(33))
  case("too complex", string.find, ("a"):rep(300), ("a?"):rep(300) .. "b")
  -- From Lua code: the error has the caller's position.
  case("from code", function() return string.find("a", "%") end)
  case("method from code", function() return ("a"):find("[") end)
  case("error value", function()
    local ok, err = pcall(string.find, "a", "%")
    return "failed: " .. err
  end)
  -- A callback's error is passed through untouched.
  case("callback error identity", function()
    local ok, err = pcall(string.gsub, "abc", "b", function() error(E) end)
    return ok, err == E
  end)
  case("callback error string", string.gsub, "abc", "b", function() error("boom") end)
  case("callback error level 0", string.gsub, "abc", "b", function() error("boom", 0) end)
  case("callback error nil", string.gsub, "abc", "b", function() error(nil) end)
  case("callback error number", string.gsub, "abc", "b", function() error(42) end)
  case("gmatch callback-less", function() return gmatch_all("abc", "%f[%w]") end)
  -- Positions and counts that are not integers.
  case("find init 2.5", string.find, "abc", "c", 2.5)
  case("find init 2.0", string.find, "abc", "c", 2.0)
  case("find init '2'", string.find, "abc", "c", "2")
  case("find init '2.5'", string.find, "abc", "c", "2.5")
  case("find init 'x'", string.find, "abc", "c", "x")
  case("find init huge", string.find, "abc", "c", math.huge)
  case("find init maxint", string.find, "abc", "c", math.maxinteger)
  case("find init minint", string.find, "abc", "c", math.mininteger)
  case("gsub n 1.5", string.gsub, "aaa", "a", "b", 1.5)
  case("gsub n '2'", string.gsub, "aaa", "a", "b", "2")
  case("gsub n -1", string.gsub, "aaa", "a", "b", -1)
  case("gsub n 0", string.gsub, "aaa", "a", "b", 0)
  case("gmatch init 1.5", function() return gmatch_all("abc", ".", 1.5) end)
  -- Argument errors, plain and method calls.
  case("find()", string.find)
  case("find(s)", string.find, "abc")
  case("s:find()", function() return ("abc"):find() end)
  case("find(s, p, false)", string.find, "abc", "b", false)
  case("find(s, p, {})", string.find, "abc", "b", {})
  case("find({}, p)", string.find, {}, "b")
  case("s:find({})", function() return ("abc"):find({}) end)
  case("find(1, 1)", string.find, 12, 1)
  case("match(nil)", string.match, nil, "a")
  case("gmatch()", string.gmatch)
  case("gmatch(s, true)", string.gmatch, "abc", true)
  case("gsub(s, p)", string.gsub, "abc", "b")
  case("gsub(s, p, true)", string.gsub, "abc", "b", true)
  case("s:gsub(p, nil)", function() return ("abc"):gsub("b", nil) end)
  case("gsub(s, p, r, {})", string.gsub, "abc", "b", "x", {})
  case("gsub repl table value", string.gsub, "abc", "%w", { a = {}, b = 1 })
  case("gsub repl function table", string.gsub, "abc", "%w", function() return {} end)
  case("gsub repl number", string.gsub, "abc", "b", 12)
  case("gsub repl float", string.gsub, "abc", "b", 1.5)
  case("gsub position capture", string.gsub, "abc", "()b", "%1")
  case("gsub %0 in table key", string.gsub, "hello world", "%w+", { hello = "HI", world = false })
  case("find plain", string.find, "a.b", ".", 1, true)
  case("find plain empty", string.find, "abc", "", 10, true)
  case("find empty past end", string.find, "abc", "", 5)
  case("find empty at end", string.find, "abc", "", 4)
  case("match anchored gmatch", function() return gmatch_all("aaa", "^a") end)
  case("bytes", string.find, "caf\195\169 \255\128", "[\128-\255]+")
  case("nul in pattern", string.find, "a\0b\0c", "\0c")
  case("nul in set", string.match, "xy\0z", "[\0]z")
  case("frontier nul", function() return gmatch_all("THE (quick) fox", "%f[%a]%a+") end)
  case("frontier end", string.find, "abc", "%f[%z]")
  case("backref position", string.find, "abab", "()ab%1")
  case("balance", string.find, "f(a(b)c)d", "%b()")
  case("balance unclosed", string.find, "f(a(b c", "%b()")
  case("string methods", function() return ("x=1"):match("(%w)=(%d)") end)
end

-- Generated cases.
local subjects = {
  "", "a", "abc", "aaa", "hello world", "  trim me  ", "key = value", "x=1, y=2",
  "f(a(b)c)d", "THE (quick) fox", "a.b-c+d*e?f", "[test]", "a\0b\0c", "\0",
  "caf\195\169", "\255\254\128", "12 apples, 345 pears", "a,b,,c", "%%%", "((()))",
  "aAbBcC", "\t\n\r ", "abcabc", "ab\nab",
}
local atoms = {
  ".", "a", "b", "c", "%a", "%A", "%c", "%d", "%D", "%g", "%l", "%p", "%s", "%S",
  "%u", "%w", "%W", "%x", "%z", "%Z", "%.", "%%", "%(", "%]", "[abc]", "[^a-z]",
  "[%w_]", "[]]", "[^]]", "[a-]", "[%a%d]", "[\0-\127]", "[\128-\255]", "\0",
  "\255", " ", ",", "=", "%b()", "%bab", "%f[%w]", "%f[%W]", "%f[%z]", "()",
}
local quantifiers = { "", "", "", "*", "+", "-", "?" }
local broken = { "%", "[a", "(", ")", "%b", "%f", "%fa", "%9", "[%", "(()", "%1" }
-- Mostly valid positions and counts, sometimes not.
local inits = { nil, 1, 0, -1, -3, -100, 2, 5, 100, 3.0, "2", 2.5, "x", true }
local plains = { nil, true, false, 1, "x" }
local maxes = { nil, 0, 1, 2, -1, 3.0, "2", 1.5, {} }

local function pick(t) return t[math.random(#t)] end
-- `pick` cannot return a table's nil entries: pick an index instead.
local function pick_sparse(t, n, valid)
  if math.random(5) > 1 then n = valid end
  return t[math.random(n)]
end

local function gen_pattern()
  local parts = {}
  if math.random(5) == 1 then parts[#parts + 1] = "^" end
  local depth = 0
  for _ = 1, math.random(0, 5) do
    local r = math.random(20)
    if r == 1 then
      parts[#parts + 1] = "("
      depth = depth + 1
    elseif r == 2 and depth > 0 then
      parts[#parts + 1] = ")"
      depth = depth - 1
    elseif r == 3 then
      parts[#parts + 1] = "%" .. math.random(1, 3)
    elseif r == 4 and math.random(3) == 1 then
      parts[#parts + 1] = pick(broken)
    else
      local a = pick(atoms)
      if a:sub(1, 2) ~= "%b" and a:sub(1, 2) ~= "%f" and a ~= "()" then
        a = a .. pick(quantifiers)
      end
      parts[#parts + 1] = a
    end
  end
  for _ = 1, depth do
    if math.random(4) > 1 then parts[#parts + 1] = ")" end
  end
  if math.random(6) == 1 then parts[#parts + 1] = "$" end
  return table.concat(parts)
end

local function gen_subject()
  if math.random(4) == 1 then
    local n, t = math.random(0, 12), {}
    for i = 1, n do t[i] = string.char(pick({ 0, 10, 32, 40, 41, 44, 46, 97, 98, 99, 65, 49, 200, 255 })) end
    return table.concat(t)
  end
  return pick(subjects)
end

local function gen_repl()
  local r = math.random(7)
  if r == 1 then return pick({ "<%0>", "%1", "%2-%1", "%%", "x", "", "%", "%a", "[%0%0]" }) end
  if r == 2 then return { a = "A", b = false, ["1"] = 1, hello = "HI", ["()"] = "P" } end
  if r == 3 then return function(...) return select("#", ...) .. ":" .. tostring((...)) end end
  if r == 4 then return function(a) if a == "a" then return nil end return false end end
  if r == 5 then return 7 end
  if r == 6 then return string.upper end
  return "%0%0"
end

local function generated(seed_, n)
  math.randomseed(seed_)
  for i = 1, n do
    local s, p = gen_subject(), gen_pattern()
    local which = math.random(5)
    local label = string.format("#%d %q %q", i, s, p)
    if which == 1 then
      local init = pick_sparse(inits, 14, 11)
      case(label .. " find " .. show(init), string.find, s, p, init)
    elseif which == 2 then
      local init, plain = pick_sparse(inits, 14, 11), pick_sparse(plains, 5, 5)
      case(label .. " find plain " .. show(init) .. show(plain), string.find, s, p, init, plain)
    elseif which == 3 then
      local init = pick_sparse(inits, 14, 11)
      case(label .. " match " .. show(init), string.match, s, p, init)
    elseif which == 4 then
      local init = pick_sparse(inits, 14, 11)
      case(label .. " gmatch " .. show(init), function() return gmatch_all(s, p, init) end)
    else
      local repl, max = gen_repl(), pick_sparse(maxes, 9, 7)
      case(label .. " gsub " .. show(repl) .. show(max), string.gsub, s, p, repl, max)
    end
  end
end

if mode == "fixed" then
  fixed()
  generated(1, 3000)
else
  generated(tonumber(seed) or os.time(), tonumber(count) or 10000)
end
return table.concat(out, "\n") .. "\n"
