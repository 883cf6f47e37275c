-- Call-heavy workload for the `probe` bench suite (run by the Lua host of
-- bench/build.rs): recursion, closures, sorting with a Lua comparator,
-- string formatting and matching, metatables, coroutines. ARG rounds of
-- the same mix: the run time grows linearly with it.
local rounds = tonumber(ARG) or 10

local function fib(k)
    if k < 2 then return k end
    return fib(k - 1) + fib(k - 2)
end

local function round(seed)
    local words = {}
    for i = 1, 300 do
        words[#words + 1] = string.format("w%05d", (i * 7919 + seed) % 100003)
    end
    table.sort(words, function(a, b) return a > b end)

    local counts = setmetatable({}, { __index = function() return 0 end })
    for _, w in ipairs(words) do
        local key = w:sub(2, 3)
        counts[key] = counts[key] + 1
    end

    local produce = coroutine.wrap(function()
        for i = 1, 100 do coroutine.yield(i) end
    end)
    local total = 0
    for _ = 1, 100 do total = total + produce() end

    local text = table.concat(words, " ")
    local replaced, hits = text:gsub("w(%d)", "%1")

    local keys = 0
    for _ in pairs(counts) do keys = keys + 1 end
    return fib(12) + total + #replaced + hits + keys
end

local sum = 0
for r = 1, rounds do sum = sum + round(r) end
print(sum)
