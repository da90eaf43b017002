"""Korean public Wi-Fi data (data.go.kr free Wi-Fi standard data) -> Athena table ``free_wifi_standard_data``.

``layout`` (table columns, header mapping) and ``values`` are dependency-free; ``normalize`` needs pyarrow.
"""
