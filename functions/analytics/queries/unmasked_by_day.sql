-- Unmasked faces per day (UTC), all devices, last ${days} day(s) incl. today
-- param: days=30
SELECT dt AS day,
       sum(unmasked) AS unmasked,
       sum(faces) AS faces,
       count(DISTINCT device_id) AS devices,
       sum(coalesce(inference_results.unknown, 0)) AS unknown
FROM ${database}.inference_results
WHERE dt > date_format(current_date - INTERVAL '${days}' DAY, '%Y-%m-%d')
  AND event_type = 'inference'
GROUP BY dt
ORDER BY day
