SELECT format('placed %s  paid %s  out_of_stock %s  held %s  released by worker %s  available %s',
              (SELECT count(*) FROM demo_attempt WHERE result IN ('pending_payment', 'paid', 'cancelled')),
              (SELECT count(*) FROM order_engine.payments WHERE outcome = 'paid'),
              (SELECT count(*) FROM demo_attempt WHERE result = 'out_of_stock'),
              s.held, (SELECT count(*) FROM order_engine.stock_hold h WHERE h.state = 'released'
                 AND h.order_no NOT IN (SELECT order_no FROM demo_attempt WHERE result = 'cancelled')),
              s.available)
  FROM order_engine.stock s WHERE s.sku_id = 1;
