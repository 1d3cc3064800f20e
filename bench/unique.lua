-- wrk script: browser-like GETs whose heads never repeat (issue 14's traffic): 8-9 fields
-- (User-Agent, Accept, Accept-Language, Accept-Encoding, a Cookie and a request id that
-- change every request, Sec-Fetch-*) and a new query string per request, on the path
-- given on the command line (run.py passes http://HOST:PORT/).
local n = 0
request = function()
  n = n + 1
  local id = string.format("%08x%08x", n, math.random(0, 0x7fffffff))
  local path = wrk.path .. "?page=" .. n .. "&q=" .. id
  local headers = {
    ["Host"] = wrk.host .. ":" .. wrk.port,
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ["Accept-Language"] = "en-US,en;q=0.9",
    ["Accept-Encoding"] = "gzip, deflate, br",
    ["Cookie"] = "session=" .. id .. "; theme=dark; seen=" .. n,
    ["X-Request-Id"] = id,
    ["Sec-Fetch-Mode"] = "navigate",
    ["Sec-Fetch-Site"] = "same-origin",
  }
  return wrk.format("GET", path, headers)
end
