-- wrk script for bench/events/run.sh: POST /v1/orders (CreateOrder) with one
-- fixed JSON body on every connection.
wrk.method = "POST"
wrk.body = '{"userId":"1","items":[{"sku":"A-1","qty":1}]}'
wrk.headers["Content-Type"] = "application/json"
