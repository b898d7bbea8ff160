package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Secrets (API keys, passwords) can come from files, so they need not appear in argv — where every user of the
// machine can read them in ps — or in the environment. A secret flag --x has a companion --x-file; each has an
// environment variable. A flag wins over the environment; setting both ways of one level is an error, not a
// silent choice.

// maxSecretFile bounds what a secret file may hold: a mistaken path to a large file fails plainly.
const maxSecretFile = 64 << 10

// setFlags names the flags given on the command line (not filled from the environment).
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// envName is the environment variable of a daemon flag.
func envName(name string) string {
	for _, d := range daemonFlags {
		if d.name == name {
			return d.env
		}
	}
	return ""
}

// secretValue resolves the flag name and its companion name-file: raw holds each flag's value, filled from its
// environment variable when the flag was not given.
func secretValue(set map[string]bool, raw map[string]*string, name string) (string, error) {
	file := name + "-file"
	value, path := *raw[name], *raw[file]
	switch {
	case set[name] && set[file]:
		return "", fmt.Errorf("--%s and --%s are mutually exclusive", name, file)
	case set[name]:
		return value, nil
	case set[file]:
		return readSecretFile(file, path)
	case value != "" && path != "":
		return "", fmt.Errorf("%s and %s are both set; set one", envName(name), envName(file))
	case path != "":
		return readSecretFile(file, path)
	}
	return value, nil
}

// readSecretFile reads a secret from path, without the line break that ends most files. Errors name the flag
// and the path, never the content.
func readSecretFile(flagName, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flagName, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flagName, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("--%s %s: the file is larger than %d bytes", flagName, path, maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("--%s %s: the file is empty", flagName, path)
	}
	return s, nil
}

// apiKeySpecs resolves the API keys: repeated --api-key flags, or --api-keys-file, or their environment
// variables (IDENTITYD_API_KEYS is comma-separated). A keys file holds one key per line (commas work too);
// blank lines and lines starting with # are skipped.
func apiKeySpecs(set map[string]bool, flagKeys []string, raw map[string]*string) ([]string, error) {
	const name, file = "api-key", "api-keys-file"
	envKeys, path := os.Getenv(envName(name)), *raw[file]
	var text string
	switch {
	case set[name] && set[file]:
		return nil, fmt.Errorf("--%s and --%s are mutually exclusive", name, file)
	case set[name]:
		return flagKeys, nil
	case set[file]:
		var err error
		if text, err = readSecretFile(file, path); err != nil {
			return nil, err
		}
	case strings.TrimSpace(envKeys) != "" && path != "":
		return nil, fmt.Errorf("%s and %s are both set; set one", envName(name), envName(file))
	case path != "":
		var err error
		if text, err = readSecretFile(file, path); err != nil {
			return nil, err
		}
	default:
		text = envKeys
	}
	var specs []string
	for line := range strings.SplitSeq(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for k := range strings.SplitSeq(line, ",") {
			if k = strings.TrimSpace(k); k != "" {
				specs = append(specs, k)
			}
		}
	}
	return specs, nil
}
