-- wrk script: GET /sdk/v2/vardata with a different user on every request (X-Amp-Exp-User
-- from the file in USERS, one base64 user per line), the way Amplitude's Node SDK asks.
local users = {}
local key = os.getenv("KEY")
local track = os.getenv("TRACK") or "no-track"
for line in io.lines(os.getenv("USERS")) do users[#users + 1] = line end
local n, i = #users, 0

function setup(thread)
  thread:set("offset", math.random(0, n - 1))
end

function request()
  i = i + 1
  local user = users[((offset or 0) + i) % n + 1]
  return wrk.format("GET", "/sdk/v2/vardata?v=0", {
    ["Authorization"] = "Api-Key " .. key,
    ["X-Amp-Exp-User"] = user,
    ["X-Amp-Exp-Track"] = track,
  })
end
