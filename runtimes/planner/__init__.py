"""The serverless planner: simulate Modal's autoscaler serving a traffic pattern, and the GPU prices it costs."""
