-- Busiest hours of the day (UTC hour 0-23) by faces seen, all devices, last ${days} day(s) incl. today
-- param: days=30
SELECT hour(from_unixtime(ts / 1e3)) AS hour_of_day,
       sum(faces) AS faces,
       sum(unmasked) AS unmasked,
       count(*) AS frames
FROM ${database}.inference_results
WHERE dt > date_format(current_date - INTERVAL '${days}' DAY, '%Y-%m-%d')
  AND event_type = 'inference'
GROUP BY hour(from_unixtime(ts / 1e3))
ORDER BY faces DESC, hour_of_day
