-- wrk script: POST a 4096-byte body to the URL given on the command line
-- (run.py passes http://HOST:PORT/echo). Must match POST_BODY in run.py.
wrk.method = "POST"
wrk.body = string.rep("x", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
