-- wrk: POST /api/v1/sales/$SALE/purchase, every request with the same
-- bearer token $TOKEN. A static request, so wrk spends nothing per request.
wrk.method = "POST"
wrk.path = "/api/v1/sales/" .. os.getenv("SALE") .. "/purchase"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
