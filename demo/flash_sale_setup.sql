-- Flash sale setup: one hot SKU with few units, spread over buckets, and a
-- helper that plays one buyer: place an order, then pay it (three times in
-- ten), cancel it (one in ten) or walk away (the hold expires).
SELECT order_engine.restock(1, 200, 'flash sale stock');
SELECT order_engine.set_price(1, 9.99);
SELECT order_engine.set_buckets(1, 8);
SELECT order_engine.set_purchase_limit(1, 2);

CREATE TABLE demo_attempt (
    order_no bigint,
    buyer_id bigint,
    result   text,
    paid     boolean,
    at       timestamptz DEFAULT clock_timestamp()
);

CREATE FUNCTION demo_buy(buyer bigint, coin integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := order_engine.next_order_no(buyer);
    r text;
BEGIN
    BEGIN
        r := order_engine.place_order(n, buyer, 1, '[{"sku_id": 1, "qty": 1}]', '3 seconds');
    EXCEPTION WHEN SQLSTATE 'OE013' THEN
        r := 'purchase_limit';
    END;
    IF r = 'pending_payment' AND coin <= 3 THEN
        r := order_engine.pay_order(n, 'psp-' || n, 9.99);
    ELSIF r = 'pending_payment' AND coin = 10 THEN
        r := order_engine.cancel_order(n, 'changed my mind');
    END IF;
    INSERT INTO demo_attempt VALUES (n, buyer, r, r = 'paid');
    RETURN r;
END $$;
