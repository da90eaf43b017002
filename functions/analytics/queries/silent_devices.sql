-- Devices not heard from (no heartbeat or inference event received) for more than ${silent_minutes} minutes (devices heard from in the last ${lookback_days} days)
-- param: silent_minutes=30
-- param: lookback_days=7
-- Judged on ingest_ts (the IoT rule's timestamp() on arrival), not ts (the device's clock, which can be behind or
-- ahead); dt (from ts) only prunes partitions. Inference events count as signs of life as well as heartbeats.
SELECT device_id,
       from_unixtime(max(ingest_ts) / 1e3) AS last_seen,
       CAST(floor(greatest(0, to_unixtime(current_timestamp) * 1e3 - max(ingest_ts)) / 60e3) AS bigint)
           AS minutes_silent
FROM ${database}.inference_results
WHERE dt > date_format(current_date - INTERVAL '${lookback_days}' DAY, '%Y-%m-%d')
  AND event_type IN ('heartbeat', 'inference')
GROUP BY device_id
HAVING max(ingest_ts) < to_unixtime(current_timestamp - INTERVAL '${silent_minutes}' MINUTE) * 1000
ORDER BY last_seen, device_id
