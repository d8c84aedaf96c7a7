-- wrk script: POST /ofrep/v1/evaluate/flags (bulk) with a different context on every request
-- (from the file in CONTEXTS, one JSON body per line).
local bodies = {}
local key = os.getenv("KEY")
for line in io.lines(os.getenv("CONTEXTS")) do bodies[#bodies + 1] = line end
local n, i = #bodies, 0

function setup(thread)
  thread:set("offset", math.random(0, n - 1))
end

function request()
  i = i + 1
  return wrk.format("POST", "/ofrep/v1/evaluate/flags", {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
  }, bodies[((offset or 0) + i) % n + 1])
end
