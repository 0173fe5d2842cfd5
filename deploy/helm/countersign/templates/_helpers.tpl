{{/* Names and labels shared by every template. */}}
{{- define "countersign.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "countersign.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "countersign.selectorLabels" -}}
app.kubernetes.io/name: {{ include "countersign.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "countersign.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "countersign.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "countersign.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "countersign.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "countersign.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding DATABASE_URL and COUNTERSIGN_RECEIPT_KEY. */}}
{{- define "countersign.secretName" -}}
{{- if .Values.secret.create }}
{{- printf "%s-secrets" (include "countersign.fullname" .) }}
{{- else if .Values.secret.existingSecret }}
{{- .Values.secret.existingSecret }}
{{- else }}
{{- fail "set secret.existingSecret to a Secret holding DATABASE_URL and COUNTERSIGN_RECEIPT_KEY (or secret.create=true with secret.databaseUrl and secret.receiptKey)" }}
{{- end }}
{{- end }}

{{- define "countersign.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "countersign.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{- define "countersign.publicUrl" -}}
{{- default (printf "http://%s.%s.svc.cluster.local" (include "countersign.fullname" .) .Release.Namespace) .Values.config.publicUrl }}
{{- end }}

{{/* Environment for the gateway and the migration step: the database and the key from the Secret. */}}
{{- define "countersign.secretEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "countersign.secretName" . }}
      key: {{ .Values.secret.keys.databaseUrl }}
- name: COUNTERSIGN_RECEIPT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "countersign.secretName" . }}
      key: {{ .Values.secret.keys.receiptKey }}
- name: DATABASE_POOL_SIZE
  value: {{ .Values.config.databasePoolSize | quote }}
- name: COUNTERSIGN_DATA_DIR
  value: /var/lib/countersign/data
- name: NODE_ENV
  value: production
{{- end }}

{{/* The writable mounts: the root filesystem is read-only. */}}
{{- define "countersign.writableMounts" -}}
- name: data
  mountPath: /var/lib/countersign
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "countersign.writableVolumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataVolume.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- end }}

{{- define "countersign.migrateCommand" -}}
command: ["node", "apps/cli/dist/main.js", "migrate"]
{{- end }}
