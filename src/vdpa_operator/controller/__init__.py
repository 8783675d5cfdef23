"""The operator (`vdpactl operator`): upstream's controllers for the vDPA path, on lightkube.

Why not kopf (which the design guide suggests): upstream's policy controller is level-triggered around one
synthetic key (`node-policy-sync-event`), the drain controller is keyed per node, and neither fits kopf's
per-object change handlers; kopf would also write its `kopf.zalando.org/*` state annotations onto users' policies
(an object diff upstream never makes), register webhooks under its own names instead of upstream's
`sriov-operator-webhook-config` and paths, and add about 30 MB of resident memory against a 120 MB budget at
1,000 nodes. What kopf would give us is small here: `kubeclient.Informer` (list, watch, re-list on 410) and
`loop.KeyedQueue` (delayed, de-duplicated, per-key serialised work with backoff) are about 250 lines, tested.
"""
