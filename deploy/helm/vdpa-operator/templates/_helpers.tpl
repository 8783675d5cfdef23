{{/* Labels on every object: the plain manifests' one, plus Helm's bookkeeping. */}}
{{- define "vdpa-operator.labels" -}}
app.kubernetes.io/part-of: vdpa-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The one image every component runs. */}}
{{- define "vdpa-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
