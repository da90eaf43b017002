-- Mask compliance rate per device per hour (UTC): share of classified faces that are masked (unknown ones left out), last ${days} day(s) incl. today
-- param: days=1
-- param: hours=8784
-- hours bounds ts as well (default 366 days: no bound beyond days): dt prunes whole partitions, the ts bound lets
-- Athena skip the Parquet row groups whose ts statistics lie before it (the alerts pass their window + 1 hour).
SELECT device_id,
       date_trunc('hour', from_unixtime(ts / 1e3)) AS hour,
       count(*) AS frames,
       sum(faces) AS faces,
       sum(masked) AS masked,
       sum(unmasked) AS unmasked,
       round(CAST(sum(masked) AS double) / nullif(sum(masked) + sum(unmasked), 0), 4) AS compliance_rate,
       sum(coalesce(inference_results.unknown, 0)) AS unknown
FROM ${database}.inference_results
WHERE dt > date_format(current_date - INTERVAL '${days}' DAY, '%Y-%m-%d')
  AND ts >= CAST(to_unixtime(current_timestamp - INTERVAL '${hours}' HOUR) * 1e3 AS bigint)
  AND event_type = 'inference'
GROUP BY device_id, date_trunc('hour', from_unixtime(ts / 1e3))
ORDER BY hour, device_id
