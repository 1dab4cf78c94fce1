{{/* Names and labels shared by every object of the release. */}}
{{- define "plume.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plume.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The API's pods (the Service's and the Deployment's selector), not the migration Job's. */}}
{{- define "plume.apiSelectorLabels" -}}
{{ include "plume.selectorLabels" . }}
app.kubernetes.io/component: api
{{- end -}}

{{- define "plume.labels" -}}
{{ include "plume.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "plume.serviceAccountName" -}}
{{- default (include "plume.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The image: by digest when one is given, else by tag (the chart's appVersion by default). */}}
{{- define "plume.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The CloudNativePG cluster's name, and its pooler's (the service the pods reach). */}}
{{- define "plume.pgCluster" -}}
{{- printf "%s-pg" (include "plume.fullname" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- define "plume.pgPooler" -}}
{{- printf "%s-pooler-rw" (include "plume.pgCluster" .) -}}
{{- end -}}

{{/* A secretKeyRef from a {name, key, optional} value. */}}
{{- define "plume.secretRef" -}}
valueFrom:
  secretKeyRef:
    name: {{ .name }}
    key: {{ .key }}
    {{- if .optional }}
    optional: true
    {{- end }}
{{- end -}}

{{/*
The pods' security context, shared by the Deployment and the migration Job: a numeric
non-root user (the image's 10001), a read-only root filesystem (only /tmp is writable, an
emptyDir), no capability, no privilege escalation, the runtime's default seccomp profile.
*/}}
{{- define "plume.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "plume.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The environment every Plume process gets; the database URL is added by each user. */}}
{{- define "plume.env" -}}
- name: PLUME_ENV
  value: production
- name: PLUME_SECRET_KEY
  {{- include "plume.secretRef" .Values.secrets.secretKey | nindent 2 }}
- name: PLUME_PREVIOUS_SECRET_KEYS
  {{- include "plume.secretRef" .Values.secrets.previousSecretKeys | nindent 2 }}
- name: PLUME_STATE_DIR
  value: /tmp/plume
{{- end -}}

{{/*
checkov's findings on the Plume containers that do not apply, each with its reason (checkov
reads these annotations: tests/deploy/test_checkov.py).
*/}}
{{- define "plume.checkovSkips" -}}
checkov.io/skip1: "CKV_K8S_35=Plume reads its secrets from PLUME_* environment variables only (pydantic-settings, no *_FILE variant), from Secrets by reference"
checkov.io/skip2: "CKV_K8S_15=the image is pinned (by digest in production) so IfNotPresent runs the same image, and Always would make every restart depend on the registry"
{{- if not .Values.image.digest }}
checkov.io/skip3: "CKV_K8S_43=rendered without image.digest (no image is built here); production sets image.digest (docs/operations.md)"
{{- end }}
{{- end -}}
