package deploy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// checkKubernetes checks the built manifests against the code: one Deployment per daemon role with its ports,
// environment names, Secret references, probes, grace period and resource requests; the Service; a
// PodDisruptionBudget per Deployment; and the NetworkPolicy.
func checkKubernetes(code codeFacts, objs []runtime.Object) problems {
	var p problems
	var secrets []*corev1.Secret
	var services []*corev1.Service
	var deployments []*appsv1.Deployment
	var pdbs []*policyv1.PodDisruptionBudget
	var policies []*networkingv1.NetworkPolicy
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Secret:
			secrets = append(secrets, o)
		case *corev1.Service:
			services = append(services, o)
		case *appsv1.Deployment:
			deployments = append(deployments, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *networkingv1.NetworkPolicy:
			policies = append(policies, o)
		default:
			p.expectf(false, "unexpected kind %T", o)
		}
	}
	if len(secrets) != 1 || len(services) != 1 || len(policies) != 1 {
		p.expectf(false, "one Secret, one Service and one NetworkPolicy, not %d, %d and %d", len(secrets), len(services), len(policies))
		return p
	}
	roles := checkDeployments(code, deployments, secrets[0], &p)
	p.expectf(roles["api"] != nil && roles["worker"] != nil, "a Deployment for the api and one for the worker")

	svc := services[0]
	p.expectf(roles["api"] != nil && maps.Equal(svc.Spec.Selector, roles["api"].labels), "the Service selects the API pods")
	for _, sp := range svc.Spec.Ports {
		target := sp.TargetPort.String()
		p.expectf(roles["api"] != nil && roles["api"].ports[target] != 0, "the Service targets a named API port, not %q", target)
		p.expectf(target != "admin", "the admin listener is never exposed by the Service")
	}

	var covered []string
	for _, pdb := range pdbs {
		p.expectf(pdb.Spec.MinAvailable != nil, "%s: minAvailable", pdb.Name)
		if pdb.Spec.Selector == nil {
			continue
		}
		for role, d := range roles {
			if maps.Equal(pdb.Spec.Selector.MatchLabels, d.labels) {
				covered = append(covered, role)
			}
		}
	}
	slices.Sort(covered)
	p.expectf(slices.Equal(covered, []string{"api", "worker"}), "a PodDisruptionBudget per Deployment, not for %v", covered)
	checkNetworkPolicy(policies[0], &p)
	return p
}

// roleFacts is what other objects refer to in a role's Deployment: its pod labels and named container ports.
type roleFacts struct {
	labels map[string]string
	ports  map[string]int32
}

// checkDeployments checks each Deployment and returns its facts by daemon role.
func checkDeployments(code codeFacts, deployments []*appsv1.Deployment, secret *corev1.Secret, p *problems) map[string]*roleFacts {
	apiPort, adminPort := port(code.envDefaults["IDENTITYD_ADDR"]), port(code.envDefaults["IDENTITYD_ADMIN_ADDR"])
	roles := map[string]*roleFacts{}
	for _, d := range deployments {
		name, pod := d.Name, d.Spec.Template
		p.expectf(d.Spec.Selector != nil && maps.Equal(d.Spec.Selector.MatchLabels, pod.Labels), "%s: selector matches its pods", name)
		sc := pod.Spec.SecurityContext
		p.expectf(sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "%s: runAsNonRoot", name)
		if len(pod.Spec.Containers) != 1 || len(pod.Spec.Containers[0].Args) == 0 {
			p.expectf(false, "%s: one container, with the role as its first argument", name)
			continue
		}
		c := pod.Spec.Containers[0]
		role := c.Args[0]
		p.expectf(code.daemonRoles[role], "%s runs a daemon role, not %q", name, role)
		p.expectf(roles[role] == nil, "one Deployment per role (%s)", role)
		var grace time.Duration
		if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
			grace = time.Duration(*s) * time.Second
		}
		p.expectf(grace >= code.grace(role), "%s: terminationGracePeriodSeconds %s covers the drain (%s)", name, grace, code.grace(role))

		facts := &roleFacts{labels: pod.Labels, ports: map[string]int32{}}
		roles[role] = facts
		for _, cp := range c.Ports {
			facts.ports[cp.Name] = cp.ContainerPort
		}
		env := map[string]string{}
		fromSecret := map[string]bool{}
		for _, e := range c.Env {
			_, known := code.envDefaults[e.Name]
			p.expectf(known, "%s: env %s is read by the daemon", name, e.Name)
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				_, inSecret := secret.StringData[ref.Key]
				p.expectf(ref.Name == secret.Name && inSecret, "%s: %s refers to a key of the Secret", name, e.Name)
				fromSecret[e.Name] = true
				continue
			}
			env[e.Name] = e.Value
		}
		p.expectf(strconv.Itoa(int(facts.ports["admin"])) == adminPort, "%s: the admin port is %s", name, adminPort)
		p.expectf(env["IDENTITYD_ADMIN_ADDR"] == "0.0.0.0:"+adminPort, "%s: IDENTITYD_ADMIN_ADDR on 0.0.0.0:%s", name, adminPort)
		_, redis := env["REDIS_URL"]
		p.expectf(redis || fromSecret["REDIS_URL"], "%s: REDIS_URL", name)
		if role != "worker" {
			p.expectf(strconv.Itoa(int(facts.ports["http"])) == apiPort, "%s: the http port is %s", name, apiPort)
			p.expectf(env["IDENTITYD_ADDR"] == "0.0.0.0:"+apiPort, "%s: IDENTITYD_ADDR on 0.0.0.0:%s", name, apiPort)
			p.expectf(fromSecret["IDENTITYD_API_KEYS"], "%s: API keys come from the Secret", name)
		}
		for probe, want := range map[string]struct {
			pr   *corev1.Probe
			path string
		}{"readinessProbe": {c.ReadinessProbe, code.adminPaths["pathReadyz"]}, "livenessProbe": {c.LivenessProbe, code.adminPaths["pathHealthz"]}} {
			if want.pr == nil || want.pr.HTTPGet == nil {
				p.expectf(false, "%s: an HTTP %s", name, probe)
				continue
			}
			p.expectf(want.pr.HTTPGet.Path == want.path, "%s: %s asks %s, not %s", name, probe, want.path, want.pr.HTTPGet.Path)
			p.expectf(strconv.Itoa(int(facts.ports[want.pr.HTTPGet.Port.String()])) == adminPort, "%s: %s on the admin port", name, probe)
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			q, ok := c.Resources.Requests[res]
			p.expectf(ok && !q.IsZero(), "%s: resource request %s", name, res)
		}
	}
	return roles
}

// checkNetworkPolicy: the policy covers every identityd pod and lets nothing reach the admin port but the
// sources it names.
func checkNetworkPolicy(np *networkingv1.NetworkPolicy, p *problems) {
	p.expectf(maps.Equal(np.Spec.PodSelector.MatchLabels, map[string]string{"app.kubernetes.io/name": "identityd"}),
		"the NetworkPolicy selects the API and the worker pods")
	p.expectf(fmt.Sprint(np.Spec.PolicyTypes) == "[Ingress]", "the NetworkPolicy governs ingress")
	opened := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		for _, rp := range rule.Ports {
			name := ""
			if rp.Port != nil {
				name = rp.Port.String()
			}
			p.expectf(name == "http" || name == "admin", "NetworkPolicy ports by name, as the Deployments call them, not %q", name)
			if name == "admin" {
				p.expectf(len(rule.From) > 0, "the admin port is open only to named sources")
			}
			opened[name] = true
		}
	}
	p.expectf(opened["http"] && opened["admin"] && len(opened) == 2, "the NetworkPolicy opens http and admin, not %v", opened)
}
