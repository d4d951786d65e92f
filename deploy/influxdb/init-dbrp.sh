#!/bin/sh
# Runs once, when the InfluxDB 2 container initialises its data: maps the bucket "water" to
# database/retention policy water/autogen, so Grafana's InfluxQL dashboards and
# `riverwatch report` (v1 query API) read the bucket riverwatch writes.
set -eu
bucket_id=$(influx bucket list --name water --hide-headers | cut -f1)
influx v1 dbrp create --db water --rp autogen --bucket-id "$bucket_id" --default
