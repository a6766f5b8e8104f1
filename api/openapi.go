package api

import _ "embed"

// OpenAPI is the OpenAPI 3 document of the device API (api/openapi.yaml), served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
