"""Kubernetes: Deployments, their pods and HorizontalPodAutoscalers.

Only this subpackage imports the kubernetes client.
"""
