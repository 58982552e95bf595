-- wrk script for bench/erpsim-rps: POST /api/v1/customers (a small JSON
-- upsert) with an Idempotency-Key.
--   wrk ... -s bench/erpsim-upsert.lua URL -- KEY APIKEY distinct|fixed NONCE
-- distinct: a new key per request, customers cycle over 1000 ids (creates
--           then updates: the effect path);
-- fixed:    one key and one body for all requests (the replay path).
local counter = 0
local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

function init(args)
    api_key = args[1]
    mode = args[2] or "distinct"
    nonce = args[3] or "0"
    headers = {}
    headers["Content-Type"] = "application/json"
    headers["X-Api-Key"] = api_key
end

function request()
    counter = counter + 1
    local key, body
    if mode == "fixed" then
        key = "bench-fixed-" .. nonce
        body = '{"tenant":"bench","customerId":"fixed","name":"Bench"}'
    else
        key = string.format("bench-%s-%d-%d", nonce, tid, counter)
        body = string.format(
            '{"tenant":"bench","customerId":"c-%d","name":"Bench %d"}',
            counter % 1000, counter)
    end
    headers["Idempotency-Key"] = key
    return wrk.format("POST", "/api/v1/customers", headers, body)
end
