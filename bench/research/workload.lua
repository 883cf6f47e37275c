-- The research bench's Lua workload: strings, patterns, tables, sorting
-- with a comparator, closures, coroutines, metatables, errors, utf8, math,
-- string.pack, load of generated code and the garbage collector.
local n = tonumber(os.getenv("TM_WORKLOAD_SIZE") or "2000")
local words = {}
for i = 1, n do
  words[#words + 1] = string.format("w%05d-%s", (i * 7919) % n, string.rep("x", i % 7))
end
table.sort(words, function(a, b) return a > b end)
local text = table.concat(words, " ")
local count = 0
for w in text:gmatch("w(%d+)") do count = count + tonumber(w) % 3 end
text = text:gsub("x+", function(s) return #s end)
assert(text:find("w0", 1, true))

local Vec = {}
Vec.__index = Vec
Vec.__add = function(a, b) return setmetatable({x = a.x + b.x, y = a.y + b.y}, Vec) end
Vec.__tostring = function(v) return "(" .. v.x .. "," .. v.y .. ")" end
local acc = setmetatable({x = 0, y = 0}, Vec)
for i = 1, n do acc = acc + setmetatable({x = i, y = -i}, Vec) end
assert(tostring(acc) ~= "")

local gen = coroutine.wrap(function()
  for i = 1, n do coroutine.yield(i * i) end
end)
local sum = 0
for _ = 1, n do sum = sum + gen() end

local ok, err = pcall(function() error({code = 42}) end)
assert(not ok and err.code == 42)
ok = pcall(function() return nil + 1 end)
assert(not ok)

local chunk = load("local a, b = ... return a * b + math.floor(a / (b + 1))")
for i = 1, n do sum = sum + chunk(i, i + 1) end

local packed = string.pack("<i4 d s", n, 3.5, "lua")
local a, b, c = string.unpack("<i4 d s", packed)
assert(a == n and b == 3.5 and c == "lua")
for _, code in utf8.codes("héllo wörld") do sum = sum + code end

local t = {}
for i = 1, n do t[i] = math.sin(i) * math.sqrt(i) end
table.sort(t)
t = nil
collectgarbage("collect")
local s = {}
for i = 1, n // 10 do s[#s + 1] = ("%d:%s"):format(i, os.date("!%Y", 0)) end
io.write(string.format("words %d count %d sum %.0f entries %d\n", #words, count, sum, #s))
