"""The Helm chart (deploy/helm/plume), rendered offline by Helm's own library, with its
default values and with an external PostgreSQL: every object valid for the target
Kubernetes version, and what an operator relies on — probes, the drain on SIGTERM, the
pods' hardening, where they may connect, the migration hook, secrets by reference only, the
alert rules and dashboard identical to deploy/'s — asserted on the rendered objects."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml

from plume.config import Settings
from tests.deploy.chart import (
    CHART,
    CUSTOM_KINDS,
    EXTERNAL,
    KUBERNETES_VERSION,
    ROOT,
    by_kind,
    one,
    render,
)

RENDERINGS = {"cloudnativepg": None, "external": EXTERNAL}


@pytest.fixture(params=sorted(RENDERINGS), scope="module")
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(RENDERINGS[request.param])


def container(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    return one(objects, kind)["spec"]["template"]["spec"]["containers"][0]


def env_of(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in spec["env"]}


# --------------------------------------------------------------------------- what is rendered


def test_the_default_rendering_has_plume_and_its_cloudnativepg_database() -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in render())
    assert kinds == [
        ("Cluster", "plume-pg"),
        ("ConfigMap", "plume-dashboard"),
        ("Deployment", "plume"),
        ("HorizontalPodAutoscaler", "plume"),
        ("Ingress", "plume"),
        ("Job", "plume-migrate"),
        ("NetworkPolicy", "plume"),
        ("PodDisruptionBudget", "plume"),
        ("Pooler", "plume-pg-pooler-rw"),
        ("PrometheusRule", "plume"),
        ("ScheduledBackup", "plume-pg-daily"),
        ("Service", "plume"),
        ("ServiceAccount", "plume"),
        ("ServiceMonitor", "plume"),
    ]


def test_an_external_database_makes_no_postgresql_objects() -> None:
    kinds = {o["kind"] for o in render(EXTERNAL)}
    assert not kinds & {"Cluster", "Pooler", "ScheduledBackup"}
    assert "Deployment" in kinds
    assert "Job" in kinds


def test_every_object_is_namespaced_in_the_release_namespace(objects: list[dict[str, Any]]) -> None:
    assert {o["metadata"].get("namespace") for o in objects} == {"plume"}


def test_every_builtin_object_is_valid_for_the_target_kubernetes(
    objects: list[dict[str, Any]],
) -> None:
    checked = 0
    for item in objects:
        if (item["apiVersion"], item["kind"]) in CUSTOM_KINDS:
            continue
        document = {k: v for k, v in item.items() if k != "_template"}
        # strict: an unknown field (a typo in a template) is an error too.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        checked += 1
    # ConfigMap, Deployment, HorizontalPodAutoscaler, Ingress, Job, NetworkPolicy,
    # PodDisruptionBudget, Service, ServiceAccount; a kind without a schema would have
    # raised SchemaNotFoundError unless it is one of the listed custom resources.
    assert checked == 9


def test_a_typo_in_a_manifest_would_be_caught() -> None:
    service = {k: v for k, v in one(render(), "Service").items() if k != "_template"}
    service["spec"]["prots"] = service["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_the_chart_renders_with_a_routing_file_and_mounts_it() -> None:
    models = {
        "model_groups": [
            {
                "name": "offline",
                "deployments": [
                    {
                        "model": "plume_offline/offline",
                        "hosting": "fr",
                        "price_per_million_tokens": {"input": 0, "output": 0},
                    }
                ],
            }
        ]
    }
    rendered = render({"routing": {"models": models}})
    config_map = next(
        o for o in by_kind(rendered, "ConfigMap") if "routing" in o["metadata"]["name"]
    )
    assert yaml.safe_load(config_map["data"]["models.yaml"]) == models
    plume = container(rendered)
    assert env_of(plume)["PLUME_MODELS_FILE"]["value"] == "/etc/plume/models.yaml"
    assert {"name": "routing", "mountPath": "/etc/plume", "readOnly": True} in plume["volumeMounts"]
    # A new routing file rolls the pods (Plume reads it at start-up only).
    before = one(render(), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    after = one(rendered, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/routing"] != after["checksum/routing"]


# --------------------------------------------------------------------------- probes and drain


def test_probes_liveness_on_healthz_readiness_on_readyz(objects: list[dict[str, Any]]) -> None:
    plume = container(objects)
    assert plume["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert plume["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert plume["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert plume[probe]["httpGet"]["port"] == "http"
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in plume["ports"]
    # Start-up (LiteLLM's import) may take a minute before liveness would kill the pod.
    startup = plume["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_the_grace_period_covers_the_prestop_sleep_and_plumes_own_drain(
    objects: list[dict[str, Any]],
) -> None:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    plume = pod["containers"][0]
    sleep = plume["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    pre_stop = int(sleep[1])
    drain = int(env_of(plume)["PLUME_DRAIN_TIMEOUT_S"]["value"])
    assert pre_stop > 0
    assert drain == Settings().drain_timeout_s  # the chart's default is Plume's
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5


def test_a_longer_drain_lengthens_the_grace_period() -> None:
    rendered = render({"plume": {"drainTimeoutSeconds": 120}, "preStopSleepSeconds": 15})
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert env_of(pod["containers"][0])["PLUME_DRAIN_TIMEOUT_S"]["value"] == "120"
    assert pod["terminationGracePeriodSeconds"] >= 135


def test_the_api_serves_on_every_address_of_the_pod(objects: list[dict[str, Any]]) -> None:
    args = container(objects)["args"]
    assert args[0] == "serve"
    assert args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (the pod's own addresses)
    assert args[args.index("--port") + 1] == "8000"


# --------------------------------------------------------------------------- hardening


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_are_hardened(objects: list[dict[str, Any]], kind: str) -> None:
    pod = one(objects, kind)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for spec in pod["containers"]:
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] > 0
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["resources"]["requests"]
        assert spec["resources"]["limits"]
        # The root filesystem is read-only: /tmp, an emptyDir, is where Plume writes.
        tmp = next(m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp")  # noqa: S108
        volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
        assert "emptyDir" in volume
        assert env_of(spec)["PLUME_STATE_DIR"]["value"].startswith("/tmp/")  # noqa: S108
    account = one(objects, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_pods_spread_over_zones_and_nodes(objects: list[dict[str, Any]]) -> None:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector


def test_secrets_come_from_secrets_by_reference_only(objects: list[dict[str, Any]]) -> None:
    for kind in ("Deployment", "Job"):
        environment = env_of(container(objects, kind))
        for name in ("PLUME_SECRET_KEY", "PLUME_DATABASE_URL"):
            assert "value" not in environment[name]
            assert environment[name]["valueFrom"]["secretKeyRef"]["name"]
    api = env_of(container(objects))
    for name in (
        "PLUME_METRICS_TOKEN",
        "PLUME_OAUTH_SIGNING_KEY",
        "PLUME_PREVIOUS_SECRET_KEYS",
        "ALBERT_API_KEY",
        "MISTRAL_API_KEY",
    ):
        assert "secretKeyRef" in api[name]["valueFrom"], name
    assert not by_kind(objects, "Secret")
    # A value named like a secret is never given in plain text.
    for item in (*env_of(container(objects)).values(), *env_of(container(objects, "Job")).values()):
        if any(word in item["name"] for word in ("KEY", "SECRET", "TOKEN", "DATABASE_URL")):
            assert "value" not in item, item["name"]


def test_production_settings_are_complete_for_plume_serve(objects: list[dict[str, Any]]) -> None:
    """plume serve refuses to start in production without the secret key and a protected
    /metrics: both are given."""
    api = env_of(container(objects))
    assert api["PLUME_ENV"]["value"] == "production"
    assert "PLUME_SECRET_KEY" in api
    assert "PLUME_METRICS_TOKEN" in api
    assert api["PLUME_PUBLIC_URL"]["value"].startswith("https://")


def test_the_migration_job_uses_the_owners_url_and_the_api_the_services() -> None:
    for values in RENDERINGS.values():
        rendered = render(values)
        job = env_of(container(rendered, "Job"))["PLUME_DATABASE_URL"]["valueFrom"]
        api = env_of(container(rendered))["PLUME_DATABASE_URL"]["valueFrom"]
        assert job["secretKeyRef"]["key"] == "owner-url"
        assert api["secretKeyRef"]["key"] == "service-url"
        assert container(rendered, "Job")["args"] == ["migrate"]


def test_migrations_run_before_every_upgrade_and_at_install() -> None:
    external = one(render(EXTERNAL), "Job")["metadata"]["annotations"]
    assert external["helm.sh/hook"] == "pre-install,pre-upgrade"
    # CloudNativePG: the cluster is made by the install itself, so the Job runs after it.
    bundled = one(render(), "Job")["metadata"]["annotations"]
    assert bundled["helm.sh/hook"] == "post-install,pre-upgrade"
    for hook in (external, bundled):
        assert "before-hook-creation" in hook["helm.sh/hook-delete-policy"]
    assert one(render(), "Job")["spec"]["backoffLimit"] >= 6


# --------------------------------------------------------------------------- network policy


def egress_ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule["ports"]}


def test_network_policy_admits_only_the_ingress_controller_and_prometheus(
    objects: list[dict[str, Any]],
) -> None:
    policy = one(objects, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["ingress"]
    sources = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]
    }
    assert sources == {"ingress-nginx", "monitoring"}
    assert egress_ports(rule) == {("TCP", 8000)}
    # It selects the API's pods and the migration Job's.
    selector = policy["podSelector"]["matchLabels"]
    for kind in ("Deployment", "Job"):
        labels = one(objects, kind)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


def test_network_policy_egress_is_dns_postgresql_and_the_providers_only() -> None:
    for mode, values in RENDERINGS.items():
        egress = one(render(values), "NetworkPolicy")["spec"]["egress"]
        assert len(egress) == 3, mode
        dns, database, provider = egress
        assert egress_ports(dns) == {("UDP", 53), ("TCP", 53)}
        assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        assert egress_ports(database) == {("TCP", 5432)}
        if mode == "cloudnativepg":
            targets = [t["podSelector"]["matchLabels"] for t in database["to"]]
            assert {"cnpg.io/poolerName": "plume-pg-pooler-rw"} in targets
            assert {"cnpg.io/cluster": "plume-pg"} in targets
        else:
            assert database["to"] == [{"ipBlock": {"cidr": "172.16.0.0/22"}}]
        assert egress_ports(provider) == {("TCP", 443)}
        block = provider["to"][0]["ipBlock"]
        # The providers' range leaves out the private networks and the metadata endpoint.
        assert "169.254.0.0/16" in block["except"]
        assert "10.0.0.0/8" in block["except"]


def test_network_policy_egress_follows_the_providers_listed() -> None:
    providers = [
        {"name": "albert", "cidr": "203.0.113.0/24", "ports": [443]},
        {"name": "scaleway", "cidr": "198.51.100.7/32", "ports": [443, 8443]},
    ]
    egress = one(render({"networkPolicy": {"providers": providers}}), "NetworkPolicy")["spec"][
        "egress"
    ]
    assert [rule["to"][0]["ipBlock"]["cidr"] for rule in egress[2:]] == [
        "203.0.113.0/24",
        "198.51.100.7/32",
    ]
    assert egress_ports(egress[3]) == {("TCP", 443), ("TCP", 8443)}


# --------------------------------------------------------------------------- the rest


def test_ingress_is_tls_to_the_service(objects: list[dict[str, Any]]) -> None:
    ingress = one(objects, "Ingress")["spec"]
    host = ingress["rules"][0]["host"]
    assert ingress["tls"] == [{"hosts": [host], "secretName": "plume-tls"}]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == one(objects, "Service")["metadata"]["name"]


def test_service_hpa_and_pdb_select_the_api_pods_only(objects: list[dict[str, Any]]) -> None:
    pods = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    job = one(objects, "Job")["spec"]["template"]["metadata"]["labels"]
    for selector in (
        one(objects, "Service")["spec"]["selector"],
        one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pods.items()
        assert not selector.items() <= job.items()
    hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == one(objects, "Deployment")["metadata"]["name"]
    assert hpa["minReplicas"] >= 2
    assert "replicas" not in one(objects, "Deployment")["spec"]  # the HPA owns the count


def test_the_prometheus_rules_are_deploys_own() -> None:
    copy = CHART / "files" / "alerts.yml"
    original = ROOT / "deploy" / "prometheus" / "alerts.yml"
    assert copy.read_bytes() == original.read_bytes(), "cp deploy/prometheus/alerts.yml " + str(
        copy
    )
    rule = one(render(), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(original.read_text(encoding="utf-8"))


def test_the_dashboard_is_deploys_own() -> None:
    copy = CHART / "files" / "plume-dashboard.json"
    original = ROOT / "deploy" / "grafana" / "plume-dashboard.json"
    assert copy.read_bytes() == original.read_bytes(), "cp " + str(original) + " " + str(copy)
    config_map = next(
        o for o in by_kind(render(), "ConfigMap") if o["metadata"]["name"] == "plume-dashboard"
    )
    assert json.loads(config_map["data"]["plume-dashboard.json"]) == json.loads(
        original.read_text(encoding="utf-8")
    )
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_the_service_monitor_scrapes_with_plumes_metrics_token() -> None:
    rendered = render()
    monitor = one(rendered, "ServiceMonitor")["spec"]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "http"
    token = env_of(container(rendered))["PLUME_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert endpoint["authorization"]["credentials"] == {"name": token["name"], "key": token["key"]}
    # The alert rules expect job="plume": the Service's app.kubernetes.io/name.
    assert monitor["jobLabel"] == "app.kubernetes.io/name"
    assert one(rendered, "Service")["metadata"]["labels"]["app.kubernetes.io/name"] == "plume"


# ------------------------------------------------- custom resources (no schema offline)


def test_the_cloudnativepg_cluster_has_what_the_operator_requires() -> None:
    rendered = render()
    cluster = one(rendered, "Cluster")
    spec = cluster["spec"]
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert spec["instances"] == 3
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1}
    assert spec["storage"]["size"]
    assert spec["walStorage"]["size"]
    assert spec["enableSuperuserAccess"] is False
    initdb = spec["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("plume", "plume_owner")
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert roles["plume_owner"]["createrole"] is True
    assert roles["plume_owner"]["superuser"] is False
    service = roles["plume_service"]
    assert service["inRoles"] == ["plume_app"]
    assert (service["superuser"], service["bypassrls"], service["createrole"]) == (
        False,
        False,
        False,
    )
    store = spec["backup"]["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://")
    assert set(store["s3Credentials"]) == {"accessKeyId", "secretAccessKey"}
    assert spec["backup"]["retentionPolicy"]

    backup = one(rendered, "ScheduledBackup")["spec"]
    assert backup["cluster"]["name"] == cluster["metadata"]["name"]
    assert len(backup["schedule"].split()) == 6  # CloudNativePG's cron has seconds

    pooler = one(rendered, "Pooler")
    assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert pooler["spec"]["type"] == "rw"
    bouncer = pooler["spec"]["pgbouncer"]
    assert bouncer["poolMode"] == "transaction"
    # Plume's per-connection timeouts travel in `options`, which PgBouncer cannot forward;
    # psycopg prepares statements, which transaction pooling must track.
    assert "options" in bouncer["parameters"]["ignore_startup_parameters"].split(",")
    assert int(bouncer["parameters"]["max_prepared_statements"]) > 0


def test_every_template_is_rendered_by_some_test() -> None:
    templates = {p.name for p in (CHART / "templates").glob("*.yaml")}
    seen = {o["_template"].rsplit("/", 1)[1] for o in render()}
    seen |= {o["_template"].rsplit("/", 1)[1] for o in render({"routing": {"models": {"a": 1}}})}
    assert templates == seen


def test_the_autoscaler_scales_on_cpu_only() -> None:
    metrics = one(render(), "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["resource"]["name"] for m in metrics] == ["cpu"]


@pytest.mark.parametrize(
    "values",
    [
        {"postgresql": {"mode": "rds"}},
        # A secret's value in the values file: refused, only a reference is accepted.
        {"secrets": {"secretKey": {"name": "plume-app", "key": "secret-key", "value": "x" * 40}}},
        {"image": {"digest": "latest"}},
        {"networkPolicy": {"providers": [{"name": "albert", "cidr": "0.0.0.0/0"}]}},
    ],
    ids=["unknown-mode", "secret-value", "digest", "provider-without-ports"],
)
def test_values_that_would_deploy_something_wrong_are_refused(values: dict[str, Any]) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmValuesError):
        render(values)


def test_only_the_proxies_the_network_policy_admits_are_trusted() -> None:
    """X-Forwarded-For is believed from the trusted range; the NetworkPolicy is what keeps
    any other pod of that range from connecting and claiming an address."""
    rendered = render()
    proxies = env_of(container(rendered))["PLUME_TRUSTED_PROXIES"]["value"].split(",")
    assert proxies
    assert "*" not in proxies
    assert one(rendered, "NetworkPolicy")["spec"]["ingress"][0]["from"]
