//go:build tools

// Package tools pins the main package built from this module.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
