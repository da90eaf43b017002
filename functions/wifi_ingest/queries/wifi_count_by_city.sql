-- Free public Wi-Fi installations per province/metropolitan city (seed chart "시도별 와이파이 설치")
SELECT city, count(*) AS installations
FROM ${database}.free_wifi_standard_data
GROUP BY city
ORDER BY installations DESC, city
