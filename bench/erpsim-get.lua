-- wrk script for bench/erpsim-rps: GET /api/v1/customers/CUST-000001
--   wrk ... -s bench/erpsim-get.lua URL -- APIKEY
function init(args)
    wrk.headers["X-Api-Key"] = args[1]
    wrk.method = "GET"
    wrk.path = "/api/v1/customers/CUST-000001"
end
