//go:build tools

// Package tools pins the main package built from this module, and the package that its
// generate.go (run by scripts/setup to write the embedded schema) imports.
package tools

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes"
	_ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)
